"""make_plugin_manager(): hook specs, built-ins, entry points, plugin.yaml modules."""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import os
from collections import Counter

import pluggy

from . import hookspecs
from .config import Config, find_config, load_config
from .errors import ConfigError, ManagerClosed
from .funnel.schema import suggest

log = logging.getLogger("whopfunnel.plugins")
BLOCK_ENV = "WHOPFUNNEL_DISABLE_PLUGINS"  # comma-separated plugin names never to load
TRACE_ENV = "WHOPFUNNEL_TRACE_HOOKS"      # "1": log every hook call at DEBUG
BUILTIN_PREFIX = "whopfunnel."


class _Refused:
    """What `pm.hook` becomes once the manager is closed: every hook call is refused."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def refuse(*args, **kwargs):
            raise ManagerClosed("this plugin manager is closed")

        return refuse


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, plus: third-party failures are logged, counted and contained;
    `close()` (or leaving a `with` block) releases the database and the Whop client, and
    a closed manager refuses every call."""

    def __init__(self) -> None:
        super().__init__("whopfunnel")
        self.add_hookspecs(hookspecs)
        self.errors: Counter = Counter()  # (plugin name, hook name) -> failures
        self.versions: dict[str, str] = {}  # plugin name -> "dist version"
        self.runtime = None  # set by make_plugin_manager: store, host, client, dispatcher
        self.closed = False

    def __enter__(self) -> PluginManager:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connection and the Whop client; refuse every later call."""
        if self.closed:
            return
        self.closed = True
        self.hook = _Refused()
        if self.runtime is not None:
            self.runtime.close()

    def register(self, plugin, name=None):
        if self.closed:
            raise ManagerClosed("this plugin manager is closed")
        try:
            name = super().register(plugin, name)
        except pluggy.PluginValidationError as exc:
            # e.g. an implementation naming a parameter the hook does not have
            label = name or getattr(plugin, "__name__", repr(plugin))
            detail = " ".join(line.strip() for line in str(exc).splitlines()[1:]) or str(exc)
            raise ConfigError(f"plugin {label!r} cannot be loaded: {detail}") from None
        if name is not None and not name.startswith(BUILTIN_PREFIX):
            for caller in self.get_hookcallers(plugin) or ():
                for impl in caller.get_hookimpls():
                    if impl.plugin is plugin and not (impl.wrapper or impl.hookwrapper):
                        impl.function = self._contain(impl.function, name, caller.name)
        return name

    def _contain(self, function, plugin_name: str, hook_name: str):
        @functools.wraps(function)
        def contained(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except Exception:
                self.errors[(plugin_name, hook_name)] += 1
                log.exception("plugin %r failed in hook %s; carrying on without it",
                              plugin_name, hook_name)
                return None

        return contained

    def load_entrypoints(self, group: str = "whopfunnel") -> None:
        for ep in importlib.metadata.entry_points(group=group):
            if self.is_blocked(ep.name) or self.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception:
                self.errors[(ep.name, "load")] += 1
                log.exception("plugin %r (entry point %s) failed to load; skipped", ep.name, ep.value)
                continue
            try:
                self.register(plugin, name=ep.name)
            except ConfigError as exc:  # an installed package must not break every command
                self.errors[(ep.name, "load")] += 1
                log.error("%s; skipped", exc)
                continue
            if ep.dist is not None:
                self.versions[ep.name] = f"{ep.dist.name} {ep.dist.version}"

    def load_module(self, dotted: str) -> None:
        if self.is_blocked(dotted) or self.has_plugin(dotted):
            return
        try:
            module = importlib.import_module(dotted)
        except Exception as exc:
            raise ConfigError(f"plugins: cannot import {dotted!r}: {type(exc).__name__}: {exc}") from None
        self.register(module, name=dotted)

    def check_pending(self) -> None:
        """A hook implementation with no spec (a misspelled name) is a configuration error."""
        known = [n for n in dir(hookspecs) if n.startswith(("on_", "register_"))]
        for name in dir(self.hook):
            caller = getattr(self.hook, name)
            if name.startswith("_") or not isinstance(caller, pluggy.HookCaller) or caller.spec:
                continue
            for impl in caller.get_hookimpls():
                if not impl.optionalhook:
                    raise ConfigError(f"plugin {impl.plugin_name!r} implements unknown hook "
                                      f"{name!r}{suggest(name, known)}")


def load_plugins(config: Config, *, environ=None, entrypoints: bool = True) -> PluginManager:
    """The manager with specs and plugins but no runtime: enough to learn validators and
    template variables (for `validate` and `chat`) without touching a database."""
    from .default_plugins import escalation

    env = os.environ if environ is None else environ
    pm = PluginManager()
    unknown = dict(unknown_blocked(config, env))
    for name in blocked_names(env):
        pm.set_blocked(name)
        if name not in unknown:
            log.info("plugin %r is disabled by %s", name, BLOCK_ENV)
    for name, hint in unknown.items():
        log.warning("%s names %r, which is no installed or configured plugin%s; nothing was "
                    "disabled for it", BLOCK_ENV, name, hint)
    pm.register(escalation, name="whopfunnel.escalation")
    if entrypoints:
        pm.load_entrypoints()
    for dotted in config.plugins:
        pm.load_module(dotted)
    pm.check_pending()
    if env.get(TRACE_ENV) == "1":
        pm.trace.root.setwriter(lambda text: log.debug("%s", text.rstrip()))
        pm.enable_tracing()
    return pm


def blocked_names(environ) -> list[str]:
    return list(dict.fromkeys(filter(None, (n.strip() for n in environ.get(BLOCK_ENV, "").split(",")))))


def known_names(config: Config, group: str = "whopfunnel") -> list[str]:
    """Every plugin name that could be loaded: built-ins, entry points, plugin.yaml modules."""
    builtins = [f"{BUILTIN_PREFIX}{n}" for n in ("escalation", "funnel", "owner", "metrics")]
    eps = [ep.name for ep in importlib.metadata.entry_points(group=group)]
    return list(dict.fromkeys([*builtins, *eps, *config.plugins]))


def unknown_blocked(config: Config, environ) -> list[tuple[str, str]]:
    """(name, "; did you mean ..." or "") for each blocked name that names no plugin."""
    known = known_names(config)
    return [(n, suggest(n, known)) for n in blocked_names(environ) if n not in known]


def make_plugin_manager(config: str | os.PathLike | Config | None = None, *, environ=None,
                        clock=None, transport=None, client=None, entrypoints: bool = True,
                        check_schema: bool = True, delivery: str = "inline") -> PluginManager:
    """Build the manager: specs, built-ins, entry-point and plugin.yaml plugins, runtime.

    `delivery="inline"` (the default, for embedding): each `on_member_join` /
    `on_message` call commits, then sends its replies and fires the hook calls it owes
    before returning. `delivery="dispatcher"`: calls commit and return at once; sending
    and hook calls are left to `pm.runtime.dispatcher.run_once()` and
    `pm.runtime.host.fire_due()` (what `whopfunnel serve` runs in its job thread).
    """
    from .default_plugins.funnel import FunnelPlugin
    from .default_plugins.owner import OwnerNotifier
    from .service.runtime import Runtime

    env = os.environ if environ is None else environ
    if not isinstance(config, Config):
        config = load_config(find_config(os.fspath(config) if config else None, env))
    pm = load_plugins(config, environ=env, entrypoints=entrypoints)
    pm.runtime = Runtime.build(pm, config, environ=env, clock=clock, transport=transport,
                               client=client, check_schema=check_schema, delivery=delivery)
    pm.register(FunnelPlugin(pm.runtime), name="whopfunnel.funnel")
    pm.register(OwnerNotifier(pm.runtime), name="whopfunnel.owner")
    pm.register(pm.runtime.activity, name="whopfunnel.metrics")  # counts ended conversations
    return pm
