"""plugin.yaml: loaded, validated (one line per problem, with file:line:column), typed.

Secrets never live here: `*_env` keys name environment variables, read only when a
command needs them (`Config.secret`), and never echoed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .config_fields import (
    API_VERSION_DATE,
    count,
    duration,
    env_name,
    rate_limit,
    section,
    text,
    version_date,
)
from .durations import RateBudget
from .errors import ConfigError
from .events import MemberJoined
from .funnel.model import DEFAULT_LADDER, Step
from .funnel.schema import check_keys, parse_ladder, suggest
from .funnel.yamlsource import Document, YList, YMap, load_bytes

TOP_KEYS = ("name", "version", "description", "database", "funnels", "routes", "whop",
            "timeouts", "escalation", "server", "plugins")
WHOP_KEYS = ("base_url", "api_key_env", "webhook_secret_env", "bot_user_id_env", "poll_every",
             "poll_budget", "api_version_date", "rate_limit")
TIMEOUT_KEYS = ("conversation", "reminder", "sweep_every")
SERVER_KEYS = ("host", "port")
ROUTE_KEYS = ("product", "experience", "company", "funnel", "default")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
@dataclass(frozen=True)
class Route:
    funnel: str
    experience: str | None = None
    product: str | None = None
    company: str | None = None
    default: bool = False
    pos: tuple[int, int] = field(default=(1, 1), compare=False)

    def matches(self, event: MemberJoined) -> bool:
        if self.default:
            return True
        if self.product is None and self.company is None:
            return self.experience is not None and self.experience == event.experience_id
        return ((self.product is None or self.product == event.product_id)
                and (self.company is None or self.company == event.company_id))


@dataclass(frozen=True)
class Config:
    path: str | None = None
    name: str = "whopfunnel"
    version: str = "0.1.0"
    database: str = "sqlite:///whopfunnel.db"
    funnels: tuple[str, ...] | None = None  # None: ./funnels next to plugin.yaml, if present
    routes: tuple[Route, ...] = ()
    base_url: str = "https://api.whop.com/api/v1"
    api_key_env: str = "WHOP_API_KEY"
    webhook_secret_env: str = "WHOP_WEBHOOK_SECRET"
    bot_user_id_env: str = "WHOP_BOT_USER_ID"
    api_version_date: str = API_VERSION_DATE
    rate_limit: RateBudget | None = RateBudget(20, 1)  # one API key's outbound budget
    poll_every: int = 10
    poll_budget: int = 60  # polling requests per minute, at most
    timeout: int = 24 * 3600
    reminder: int | None = None
    sweep_every: int = 3600
    ladders: Mapping[str, tuple[Step, ...]] = field(default_factory=lambda: {"default": DEFAULT_LADDER})
    host: str = "127.0.0.1"
    port: int = 8080
    plugins: tuple[str, ...] = ()
    funnels_pos: tuple[tuple[int, int], ...] = field(default=(), compare=False)  # plugin.yaml

    def database_url(self, environ: Mapping[str, str] | None = None) -> str:
        """DATABASE_URL, when set, wins over plugin.yaml."""
        env = os.environ if environ is None else environ
        return env.get("DATABASE_URL") or self.database

    def secret(self, key: str, environ: Mapping[str, str] | None = None) -> str:
        """The value of the environment variable that `key` (e.g. api_key_env) names."""
        env = os.environ if environ is None else environ
        name = getattr(self, key)
        value = env.get(name)
        if not value:
            raise ConfigError(f"environment variable {name} is not set "
                              f"(named by whop.{key} in {self.path or 'plugin.yaml'})")
        return value

    def route(self, event: MemberJoined) -> Route | None:
        return next((r for r in self.routes if r.matches(event)), None)

    def funnel_paths(self) -> list[Path]:
        """The funnel files and folders; one named in plugin.yaml that does not exist is a
        ConfigError at its place under `funnels:`."""
        base = Path(self.path).parent if self.path else Path.cwd()
        if self.funnels is None:
            default = base / "funnels"
            return [default] if default.is_dir() else []
        paths = [p if p.is_absolute() else base / p for p in map(Path, self.funnels)]
        missing = [
            f"{self.path or 'plugin.yaml'}:{pos[0]}:{pos[1]}: funnels: {name} does not exist"
            + ("" if Path(name) == path else f" (looked for {path})")
            for name, path, pos in zip(self.funnels, paths, self.funnels_pos or [(1, 1)] * len(paths))
            if not path.exists()
        ]
        if missing:
            raise ConfigError("\n".join(missing))
        return paths


def load_config(path: str | Path | None) -> Config:
    """Read plugin.yaml; None gives the defaults. Raises ConfigError listing every problem."""
    if path is None:
        return Config()
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror or exc}") from None
    doc = load_bytes(raw, str(path))
    config = None if doc.problems else _build(doc)
    errors = [p for p in doc.problems if p.severity == "error"]
    if errors:
        raise ConfigError("\n".join(str(p) for p in sorted(errors, key=lambda p: (p.line, p.column))))
    return config


def find_config(explicit: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """--config, then WHOPFUNNEL_CONFIG, then ./plugin.yaml if it exists."""
    env = os.environ if environ is None else environ
    chosen = explicit or env.get("WHOPFUNNEL_CONFIG")
    if chosen:
        if not Path(chosen).is_file():
            raise ConfigError(f"configuration file {chosen} does not exist")
        return chosen
    return "plugin.yaml" if Path("plugin.yaml").is_file() else None


def _build(doc: Document) -> Config | None:
    data = doc.data
    if data is None:
        return Config(path=doc.file)
    if not isinstance(data, YMap):
        doc.problem(doc.pos, "plugin.yaml must be a mapping of settings")
        return None
    check_keys(doc, data, TOP_KEYS, "at the top level")
    d = Config()
    whop = section(doc, data, "whop", WHOP_KEYS)
    timeouts = section(doc, data, "timeouts", TIMEOUT_KEYS)
    server = section(doc, data, "server", SERVER_KEYS)
    funnels = data.get("funnels")
    funnels_pos = [data.where("funnels")]
    if isinstance(funnels, str):
        funnels = [funnels]
    elif isinstance(funnels, YList):
        funnels_pos = list(funnels.item_pos)
    if funnels is not None and (not isinstance(funnels, list)
                                or not all(isinstance(f, str) for f in funnels)):
        doc.problem(data.where("funnels"), "funnels must be a directory or a list of files")
        funnels = None
    port = server.get("port", d.port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        doc.problem(server.where("port"), f"server.port must be a port number, not {port!r}")
        port = d.port
    plugins = data.get("plugins") or []
    if not isinstance(plugins, list):
        doc.problem(data.where("plugins"), "plugins must be a list of dotted module names")
        plugins = []
    for i, name in enumerate(plugins):
        if not isinstance(name, str) or not _MODULE.match(name):
            doc.problem(data["plugins"].item_pos[i], f"plugin {name!r} is not a dotted module name")
    timeout = duration(doc, timeouts, "conversation", "timeouts.", d.timeout)
    reminder = duration(doc, timeouts, "reminder", "timeouts.", None, allow_none=True)
    if reminder is not None and reminder >= timeout:
        doc.problem(timeouts.where("reminder"), "timeouts.reminder must be shorter than "
                    "timeouts.conversation, or the reminder would never be sent")
    base_url = text(doc, whop, "base_url", "whop.", d.base_url)
    if not base_url.startswith(("http://", "https://")):
        doc.problem(whop.where("base_url"), f"whop.base_url must be an http(s) URL, not {base_url!r}")
    database = text(doc, data, "database", "", d.database)
    if not re.match(r"(sqlite|postgres|postgresql|mysql|mariadb)(\+\w+)?://", database):
        doc.problem(data.where("database"), "database must be a URL like sqlite:///whopfunnel.db, "
                    "postgresql://user@host/db or mysql://user@host/db")
    return Config(
        path=doc.file, name=text(doc, data, "name", "", d.name),
        version=str(data.get("version", d.version)), database=database,
        funnels=None if funnels is None else tuple(funnels), routes=_routes(doc, data),
        base_url=base_url.rstrip("/"),
        api_key_env=env_name(doc, whop, "api_key_env", d.api_key_env),
        webhook_secret_env=env_name(doc, whop, "webhook_secret_env", d.webhook_secret_env),
        bot_user_id_env=env_name(doc, whop, "bot_user_id_env", d.bot_user_id_env),
        api_version_date=version_date(doc, whop, d.api_version_date),
        rate_limit=rate_limit(doc, whop, d.rate_limit),
        poll_every=duration(doc, whop, "poll_every", "whop.", d.poll_every, allow_zero=True),
        poll_budget=count(doc, whop, "poll_budget", d.poll_budget),
        timeout=timeout, reminder=reminder,
        sweep_every=duration(doc, timeouts, "sweep_every", "timeouts.", d.sweep_every),
        ladders=_ladders(doc, data), host=text(doc, server, "host", "server.", d.host),
        port=port, plugins=tuple(p for p in plugins if isinstance(p, str)),
        funnels_pos=tuple(funnels_pos) if funnels is not None else (),
    )


def _routes(doc: Document, data: YMap) -> tuple[Route, ...]:
    raw = data.get("routes")
    if raw is None:
        return ()
    if not isinstance(raw, YList):
        doc.problem(data.where("routes"), "routes must be a list")
        return ()
    routes = []
    for i, (item, pos) in enumerate(zip(raw, raw.item_pos), start=1):
        if not isinstance(item, YMap):
            doc.problem(pos, f"route {i} must be a mapping with a funnel")
            continue
        check_keys(doc, item, ROUTE_KEYS, f"in route {i}")
        if not isinstance(item.get("funnel"), str):
            doc.problem(item.pos, f"route {i} needs 'funnel: <funnel id>'")
            continue
        values = {k: item.get(k) for k in ("product", "experience", "company")}
        for k, v in values.items():
            if v is not None and not isinstance(v, str):
                doc.problem(item.where(k), f"route {i}: {k} must be an id, not {v!r}")
        default = item.get("default", False) is True
        if not default and not any(values.values()):
            doc.problem(item.pos, f"route {i} matches nothing: give product, experience, company "
                        "or default: true")
        routes.append(Route(funnel=item["funnel"], default=default, pos=item.where("funnel"),
                            **{k: v for k, v in values.items() if isinstance(v, str)}))
    return tuple(routes)


def _ladders(doc: Document, data: YMap) -> dict[str, tuple[Step, ...]]:
    ladders = {"default": DEFAULT_LADDER}
    raw = data.get("escalation")
    if raw is None:
        return ladders
    if not isinstance(raw, YMap):
        doc.problem(data.where("escalation"), "escalation must map ladder names to lists of steps")
        return ladders
    for name, steps in raw.items():
        ladder = parse_ladder(doc, steps, raw.where(name), f"of ladder {name!r}")
        if ladder is not None:
            ladders[str(name)] = ladder
    return ladders


def check_routes(config: Config, funnel_ids) -> None:
    """A route to a funnel that does not exist is a configuration error."""
    problems = [
        f"{config.path or 'plugin.yaml'}:{r.pos[0]}:{r.pos[1]}: route {i} names unknown funnel "
        f"{r.funnel!r}{suggest(r.funnel, funnel_ids)}"
        for i, r in enumerate(config.routes, start=1) if r.funnel not in funnel_ids
    ]
    if problems:
        raise ConfigError("\n".join(problems))

