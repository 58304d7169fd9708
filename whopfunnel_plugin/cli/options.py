"""What every command shares: --config before or after the subcommand, the loaded
configuration, the plugins' validation context, and small wording helpers."""

from __future__ import annotations

import functools
from datetime import datetime, timezone

import click

from ..config import Config, find_config, load_config


def config_option(fn):
    """--config works before or after the subcommand name; the later one wins."""

    @click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                  help="plugin.yaml to use (default: $WHOPFUNNEL_CONFIG, then ./plugin.yaml).")
    @click.pass_context
    @functools.wraps(fn)
    def wrapper(ctx, config_path, **kwargs):
        ctx.ensure_object(dict)
        if config_path:
            ctx.obj["config_path"] = config_path
        return fn(**kwargs)

    return wrapper


def current_config() -> Config:
    ctx = click.get_current_context()
    obj = ctx.find_root().obj or {}
    if "config" not in obj:
        obj["config"] = load_config(find_config(obj.get("config_path")))
    return obj["config"]


def plugin_context(config: Config) -> dict:
    """Validators and template variables that installed plugins provide (and the manager)."""
    from ..plugins import load_plugins
    from ..service.runtime import plugin_context

    pm = load_plugins(config)
    return {**plugin_context(pm), "pm": pm}


def parse_now(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time like 2026-01-31T12:00:00Z",
                                 param_hint="--now") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
