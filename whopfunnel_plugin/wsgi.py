"""A WSGI app for another server: `gunicorn 'whopfunnel_plugin.wsgi:make_app()'`."""

from __future__ import annotations

from .config import find_config, load_config
from .plugins import make_plugin_manager
from .preflight import missing_environment
from .service.server import wire


def make_app(config: str | None = None):
    """The webhook app on a plugin manager built from `config` (plugin.yaml by default).

    The jobs (outbox, polling, sweep) run in a thread of each worker process; they are
    safe to run in several processes at once (claims, SKIP LOCKED).
    """
    loaded = load_config(find_config(config))
    missing_environment(loaded)  # every missing variable at once, the bot user id included
    app, jobs = wire(make_plugin_manager(loaded, delivery="dispatcher"))
    jobs.start()
    return app
