"""`--log-level` and `--log-format` for commands that run the service."""

from __future__ import annotations

import functools
import os

import click

from ..service import logs


def logging_options(fn):
    @click.option("--log-level", type=click.Choice(logs.LEVELS, case_sensitive=False),
                  default="INFO", show_default=True, help="Least severe level logged.")
    @click.option("--log-format", type=click.Choice(logs.FORMATS), default="text",
                  show_default=True, help="text lines, or one JSON object per line.")
    @functools.wraps(fn)
    def wrapper(*args, log_level, log_format, **kwargs):
        return fn(*args, log_level=log_level.upper(), log_format=log_format, **kwargs)

    return wrapper


def start_logging(config, level: str, fmt: str, environ=None):
    """Configure logging to stderr with every secret of `config` redacted; returns the
    function that undoes it."""
    from ..plugins import TRACE_ENV

    env = os.environ if environ is None else environ
    trace = env.get(TRACE_ENV) == "1"
    restore = logs.configure(level, fmt, secrets=logs.secrets_of(config, env), trace_hooks=trace)
    if trace:
        logs.logging.getLogger("whopfunnel.plugins").info(
            "%s=1: every hook call is logged (logger whopfunnel.plugins, level DEBUG)", TRACE_ENV)
    return restore
