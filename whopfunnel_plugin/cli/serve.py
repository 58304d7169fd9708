"""`whopfunnel serve [--demo]`: the webhook endpoint and the jobs, or the offline demo."""

from __future__ import annotations

import sys

import click

from ..errors import ConfigError
from .options import config_option, current_config


@click.command()
@click.option("--demo", is_flag=True, help="Run offline against a built-in fake Whop API, then exit.")
@click.option("--host", default=None, help="Listen address (default: plugin.yaml server.host).")
@click.option("--port", type=int, default=None, help="Port (default: plugin.yaml server.port).")
@config_option
def serve(demo, host, port) -> None:
    """Run the webhook endpoint, outbox dispatcher, polling and the timeout sweep."""
    if demo:
        from .demo import run_demo

        sys.exit(run_demo(click.echo))
    from ..plugins import make_plugin_manager
    from ..service.server import build_service

    pm = make_plugin_manager(current_config(), delivery="dispatcher")
    try:
        service = build_service(pm, host=host, port=port)
    except OSError as exc:
        pm.close()
        config = current_config()
        where = f"{host or config.host}:{config.port if port is None else port}"
        raise ConfigError(f"cannot listen on {where}: {exc.strerror or exc} "
                          "(server.host/server.port in plugin.yaml, or --host/--port)") from None
    except BaseException:
        pm.close()
        raise
    service.install_signal_handlers()
    click.echo(f"whopfunnel serving POST {service.url}/webhooks/whop (Ctrl-C stops)", err=True)
    service.run()
    click.echo("whopfunnel stopped", err=True)
