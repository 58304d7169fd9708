"""Checks before serving: the mistakes an operator makes with plugin.yaml and the
environment, each caught with one clear line (and a secret never echoed).

`config.py` calls `looks_like_secret` on every `*_env` key; `whopfunnel serve` (and
the WSGI factory) call the rest before touching the database.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from .errors import ConfigError, Problem
from .funnel.yamlsource import YMap, load_bytes

SECRET_PREFIXES = ("ws_", "whsec_", "apik_", "sk_", "pk_", "key_", "Bearer ")
_RANDOM_RUN = re.compile(r"[A-Za-z0-9]{16,}")
SERVE_ENV = ("api_key_env", "webhook_secret_env", "bot_user_id_env")


def looks_like_secret(value: str) -> bool:
    """A Whop secret or key pasted where an environment variable name belongs: a known
    prefix (`ws_`, `whsec_`, `apik_`, ...), or a long random-looking run of letters and
    digits (environment variable names are words joined by underscores)."""
    if value.startswith(SECRET_PREFIXES):
        return True
    for run in _RANDOM_RUN.findall(value):
        if any(c.isdigit() for c in run) and any(c.isalpha() for c in run):
            return True
    return len(value) >= 64


def missing_environment(config, keys=SERVE_ENV,
                        environ: Mapping[str, str] | None = None) -> None:
    """Raise one ConfigError naming every environment variable that `keys` (e.g.
    api_key_env) name and that is unset or empty."""
    env = os.environ if environ is None else environ
    missing = [f"{getattr(config, k)} (whop.{k})" for k in keys if not env.get(getattr(config, k))]
    if missing:
        one = len(missing) == 1
        raise ConfigError(f"environment {'variable is' if one else 'variables are'} not set: "
                          f"{', '.join(missing)}; set {'it' if one else 'them'}, or name "
                          f"{'another' if one else 'others'} in {config.path or 'plugin.yaml'}")


def nothing_to_serve(config, funnel_files) -> str | None:
    """What `serve` would lack (routes, funnels), as one line, or None."""
    where = config.path or "plugin.yaml (none found here: --config or WHOPFUNNEL_CONFIG)"
    lacks = []
    if not config.routes:
        lacks.append(f"no routes in {where}")
    if not funnel_files:
        folders = ", ".join(str(p) for p in config.funnel_paths()) or "./funnels (missing)"
        lacks.append(f"no funnel files (*.yaml) in {folders}")
    return f"nothing to serve: {' and '.join(lacks)}" if lacks else None


def reminder_problems(config, funnels) -> list:
    """A warning for each funnel whose own timeout is at or under timeouts.reminder: its
    conversations expire before the reminder could be sent."""
    if not config.reminder:
        return []
    found = []
    for funnel in funnels:
        if funnel.timeout is None or config.reminder < funnel.timeout:
            continue
        line, column = 1, 1
        try:
            doc = load_bytes(Path(funnel.file).read_bytes(), funnel.file)
            if isinstance(doc.data, YMap) and "timeout" in doc.data:
                line, column = doc.data.where("timeout")
        except OSError:
            pass
        found.append(Problem(funnel.file or funnel.id, line, column,
                             f"funnel {funnel.id!r} times out after {_human(funnel.timeout)}, at or "
                             f"before timeouts.reminder ({_human(config.reminder)} in "
                             f"{config.path or 'plugin.yaml'}): its reminder is never sent",
                             "warning"))
    return found


def _human(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
