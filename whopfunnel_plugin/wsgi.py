"""A WSGI app for another server: `gunicorn 'whopfunnel_plugin.wsgi:make_app()'`."""

from __future__ import annotations

from .plugins import make_plugin_manager
from .service.server import wire


def make_app(config: str | None = None):
    """The webhook app on a plugin manager built from `config` (plugin.yaml by default).

    The jobs (outbox, polling, sweep) run in a thread of each worker process; they are
    safe to run in several processes at once (claims, SKIP LOCKED).
    """
    app, jobs = wire(make_plugin_manager(config, delivery="dispatcher"))
    jobs.start()
    return app
