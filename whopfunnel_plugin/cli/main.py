"""The `whopfunnel` command group. The only place exceptions become messages and exit codes."""

from __future__ import annotations

import click

from ..errors import FunnelError, WhopFunnelError
from .chat import chat
from .conversations import conversations
from .db import db
from .fake_whop import fake_whop
from .graph import graph
from .plugins import plugins
from .report import report
from .serve import serve
from .stats import stats
from .sweep import sweep
from .test import test
from .validate import validate


class _Group(click.Group):
    """Turns whopfunnel's own errors into one line each and exit code 1 (never a traceback)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FunnelError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
        except WhopFunnelError as exc:
            for line in str(exc).splitlines() or [type(exc).__name__]:
                click.echo(f"error: {line}", err=True)
        except KeyboardInterrupt:
            ctx.exit(130)
        ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="plugin.yaml to use (default: $WHOPFUNNEL_CONFIG, then ./plugin.yaml).")
@click.version_option(package_name="whopfunnel")
@click.pass_context
def cli(ctx, config_path) -> None:
    """DM funnels for Whop communities."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


for command in (validate, chat, test, graph, sweep, db, serve, fake_whop, plugins, stats,
                report, conversations):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="whopfunnel")
