"""`whopfunnel serve [--demo]`: the webhook endpoint and the jobs, or the offline demo.

Before anything touches the database it checks what an operator gets wrong: every
missing environment variable (named at once), no routes or no funnels, a bad port.
"""

from __future__ import annotations

import logging
import signal
import sys

import click

from ..errors import ConfigError
from .logging_options import logging_options, start_logging
from .options import config_option, current_config

log = logging.getLogger("whopfunnel.serve")


@click.command()
@click.option("--demo", is_flag=True, help="Run offline against a built-in fake Whop API, then exit.")
@click.option("--host", default=None, help="Listen address (default: plugin.yaml server.host).")
@click.option("--port", type=int, default=None, help="Port, 0-65535 (default: plugin.yaml "
              "server.port; 0 picks a free one).")
@click.option("--reload", "watch", is_flag=True, help="Watch the funnel files and reload them "
              "when they change (SIGHUP always reloads).")
@logging_options
@config_option
def serve(demo, host, port, watch, log_level, log_format) -> None:
    """Run the webhook endpoint, outbox dispatcher, polling and the timeout sweep."""
    if port is not None and not 0 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a port number (0-65535)")
    if demo:
        from .demo import run_demo

        sys.exit(run_demo(click.echo))
    from ..funnel.catalog import expand
    from ..preflight import missing_environment, nothing_to_serve

    config = current_config()
    lacking = nothing_to_serve(config, expand(config.funnel_paths()))
    if lacking:
        raise ConfigError(lacking)
    missing_environment(config)
    restore = start_logging(config, log_level, log_format)
    try:
        _run(config, host, port, watch)
    finally:
        restore()


def _run(config, host, port, watch) -> None:
    from ..plugins import make_plugin_manager
    from ..preflight import reminder_problems
    from ..service.reload import Reloader
    from ..service.server import build_service
    from ..storage import redact_url

    pm = make_plugin_manager(config, delivery="dispatcher")
    try:
        for problem in reminder_problems(config, pm.runtime.host.funnels.values()):
            log.warning("%s", problem)
        service = build_service(pm, host=host, port=port)
    except OSError as exc:
        pm.close()
        where = f"{host or config.host}:{config.port if port is None else port}"
        raise ConfigError(f"cannot listen on {where}: {exc.strerror or exc} "
                          "(server.host/server.port in plugin.yaml, or --host/--port)") from None
    except BaseException:
        pm.close()
        raise
    reloader = Reloader(pm.runtime, watch=watch)
    service.jobs.every(1, "reload", reloader.run_once)
    service.install_signal_handlers()
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: reloader.request())
    funnels = ", ".join(f"{f.id} {f.version}" for f in pm.runtime.host.funnels.values())
    log.info("whopfunnel serving on %s: database %s, funnels %s, %s", service.url,
             redact_url(config.database_url()), funnels,
             "watching funnel files" if watch else "SIGHUP reloads funnels")
    click.echo(f"whopfunnel serving POST {service.url}/webhooks/whop (Ctrl-C stops)", err=True)
    service.run()
    click.echo("whopfunnel stopped", err=True)
