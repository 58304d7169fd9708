"""The webhook endpoint as a WSGI app, and `serve()`: waitress plus the periodic jobs.

`POST /webhooks/whop` verifies, parses, commits and answers; it never talks to Whop
(sending happens from the outbox, woken right after the commit), so it stays well
inside Whop's 5-second budget. `GET /healthz` answers 200 when the database does, 503
when it does not.
The app is a plain WSGI callable: `whopfunnel_plugin.wsgi:make_app()` builds one for
gunicorn and the like.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace

from ..errors import ConfigError, DatabaseUnavailable
from ..events import MAX_ID, MemberJoined, MembershipEnded, Outcome, overlong_id
from ..whop import webhooks
from . import probes
from .http import Service

log = logging.getLogger("whopfunnel.server")
RETRY_AFTER = 5  # seconds a webhook is asked to wait while the database is unavailable
CHANGED = frozenset({"started", "restarted", "advanced", "ended"})  # outcomes that wrote something
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed", 413: "Payload Too Large", 500: "Internal Server Error",
           503: "Service Unavailable"}


class WebhookApp:
    """WSGI app for Whop webhooks. `on_commit` is called after new work was committed."""

    def __init__(self, pm, *, secret: str, bot_user_id: str | None = None,
                 on_commit: Callable[[], None] | None = None,
                 max_body: int = webhooks.MAX_BODY_BYTES):
        self.pm = pm
        self.runtime = pm.runtime
        self.secret = secret
        self.bot_user_id = bot_user_id
        self.on_commit = on_commit or (lambda: None)
        self.max_body = max_body

    def __repr__(self) -> str:
        return "WebhookApp()"

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz":
            if method not in ("GET", "HEAD"):
                return _answer(start_response, 405, {"error": "use GET"}, [("Allow", "GET, HEAD")])
            return self._health(start_response)
        if path in probes.ROUTES:  # /readyz, /metrics (service/probes.py)
            return probes.answer(self.runtime, path, method, start_response)
        if path != "/webhooks/whop":
            return _answer(start_response, 404, {"error": f"no route {path}"})
        if method != "POST":
            return _answer(start_response, 405, {"error": "use POST"}, [("Allow", "POST")])
        # one log line and the webhook metrics per delivery (service/activity.py)
        return self.runtime.activity.timed_webhook(self._webhook, environ, start_response)

    def _webhook(self, environ, start_response, note: dict):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _answer(start_response, 400, {"error": "bad Content-Length"})
        if length < 0:
            return _answer(start_response, 400, {"error": "bad Content-Length"})
        if length > self.max_body:
            return _answer(start_response, 413, {"error": f"body over {self.max_body} bytes"})
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items()
                   if k.startswith("HTTP_")}
        try:
            status, answer = self.handle(headers, body, note)
        except webhooks.WebhookError as exc:
            note["error"] = str(exc)
            return _answer(start_response, exc.status, {"error": str(exc)})
        except DatabaseUnavailable as exc:
            # Whop redelivers; nothing was half-written (the transaction rolled back).
            log.warning("webhook deferred: %s", exc)
            note["error"] = "database unavailable"
            return _answer(start_response, 503, {"error": "database unavailable; retry later"},
                           [("Retry-After", str(RETRY_AFTER))])
        except Exception:
            log.exception("webhook processing failed; Whop will retry it")
            note["error"] = "internal error"
            return _answer(start_response, 500, {"error": "internal error; retry later"})
        note["answer"] = answer
        return _answer(start_response, status, answer)

    def handle(self, headers: dict, body: bytes, note: dict | None = None) -> tuple[int, dict]:
        """Verify, parse and process one delivery; returns (status, JSON answer). `note`,
        if given, gets the event type, tenant and outcome for the log line."""
        now = self.runtime.clock.now()
        delivery = webhooks.verify(headers, body, self.secret, now=now.timestamp())
        envelope = webhooks.parse(body, max_bytes=self.max_body)
        note = {} if note is None else note
        note["event"] = envelope.type
        chosen: dict = {}
        event = webhooks.to_event(envelope, bot_user_id=self.bot_user_id,
                                  route=lambda info: self._route(info, chosen))
        if not isinstance(event, webhooks.Ignored) and (name := overlong_id(event)):
            raise webhooks.PayloadError(f"{name} is longer than {MAX_ID} characters")
        if isinstance(event, webhooks.Ignored):
            if not self.runtime.store.record_delivery(delivery, now):
                return 200, {"status": "duplicate"}
            return 200, {"status": "ignored", "reason": event.reason}  # logged by activity.py
        note["tenant"] = event.experience_id
        outcome = note["outcome"] = self._process(event, delivery, chosen.get("funnel"))
        if outcome is None or outcome.status in CHANGED:
            self.on_commit()  # wake the sender: there is new work
        return 200, {"status": outcome.status if outcome else "processed"}

    def _process(self, event, delivery: str, funnel_id: str | None,
                 routed: tuple | None = None) -> Outcome | None:
        """The core handles the event (the join and its delivery id commit together, so a
        redelivery is a no-op), then the other plugins' hooks see it."""
        runtime = self.runtime
        core = self.pm.get_plugin("whopfunnel.funnel")  # None: a plugin replaced it
        if isinstance(event, MembershipEnded):
            return runtime.end(replace(event, delivery_id=delivery))
        if isinstance(event, MemberJoined):
            event = replace(event, delivery_id=delivery, funnel_id=funnel_id or event.funnel_id)
            outcome = runtime.join(event) if core is not None else None
            self._others("on_member_join", core)(event=event)
            return outcome
        outcome = (runtime.message(event, delivery_id=delivery, routed=routed)
                   if core is not None else None)
        self._others("on_message", core)(message=event)
        return outcome

    def _others(self, name: str, core):
        if core is None:
            return getattr(self.pm.hook, name)
        return self.pm.subset_hook_caller(name, remove_plugins=[core])

    def _route(self, info: dict, chosen: dict) -> str | None:
        """The tenant for a delivery: a DM goes where its member's conversation is."""
        if info.get("experience_id"):
            return info["experience_id"]
        if info.get("user_id"):
            row, seen = self.runtime.store.route_dm(info["user_id"], info.get("channel_id"),
                                                    info.get("message_id"))
            chosen["routed"] = (row, seen)  # handed to the host: no second read
            return row.experience_id if row is not None else None
        route = self.runtime.config.route(MemberJoined(
            experience_id="", user_id="", product_id=info.get("product_id"),
            company_id=info.get("company_id")))
        if route is None:
            return None
        chosen["funnel"] = route.funnel
        return route.experience

    def _health(self, start_response):
        try:
            self.runtime.store.ping()
        except Exception as exc:
            return _answer(start_response, 503, {"status": "database unavailable",
                                                 "error": type(exc).__name__},
                           [("Retry-After", str(RETRY_AFTER))])
        return _answer(start_response, 200, {"status": "ok"})


def _answer(start_response, status: int, payload: dict, extra=()):
    body = json.dumps(payload).encode()
    start_response(f"{status} {REASONS.get(status, '')}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                    *extra])
    return [body]


def wire(pm, environ=None):
    """The app and the jobs (outbox, polling, sweep) around a plugin manager."""
    from .poller import Poller
    from .scheduler import JobRunner

    runtime = pm.runtime
    config = runtime.config
    for i, route in enumerate(config.routes, start=1):
        if route.experience is None and (route.product or route.company or route.default):
            raise ConfigError(f"{config.path or 'plugin.yaml'}:{route.pos[0]}:{route.pos[1]}: "
                              f"route {i} has no experience: webhook joins need it to know the "
                              "tenant")
    env = runtime.environ if environ is None else environ
    secret = config.secret("webhook_secret_env", env)
    bot_user_id = env.get(config.bot_user_id_env) or None
    if runtime.delivery != "dispatcher":
        # Webhooks must answer fast: sending and hook calls (the owner's DM) belong in the
        # job thread, right after the commit, not in the request.
        raise ConfigError("a served plugin manager delivers through the dispatcher: build it "
                          "with make_plugin_manager(..., delivery='dispatcher')")
    jobs = JobRunner(observe=runtime.activity.job)
    runtime.dispatcher.stopping = jobs.stopping
    runtime.store.defer_checkpoints()  # no request waits for a WAL checkpoint (SQLite)
    jobs.every(1, "checkpoint", runtime.store.checkpoint)
    jobs.every(1, "outbox", runtime.dispatcher.run_once, urgent=True)
    jobs.every(1, "hooks", runtime.host.fire_due, urgent=True)
    if config.poll_every:
        poller = Poller(pm, bot_user_id=bot_user_id, requests_per_minute=config.poll_budget)
        jobs.every(config.poll_every, "poll", poller.run_once)
    jobs.every(config.sweep_every, "sweep", runtime.host.sweep)
    app = WebhookApp(pm, secret=secret, bot_user_id=bot_user_id, on_commit=jobs.wake)
    return app, jobs


def build_service(pm, *, host: str | None = None, port: int | None = None, environ=None,
                  **limits) -> Service:
    """`whopfunnel serve`: waitress on host:port (plugin.yaml's server section by default)."""
    app, jobs = wire(pm, environ)
    config = pm.runtime.config
    return Service(pm, app, jobs, host=host or config.host,
                   port=config.port if port is None else port, **limits)
