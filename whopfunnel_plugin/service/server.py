"""The webhook endpoint as a WSGI app, and `serve()`: waitress plus the periodic jobs.

`POST /webhooks/whop` verifies, parses, commits and answers; it never talks to Whop
(sending happens from the outbox, woken right after the commit), so it stays well
inside Whop's 5-second budget. `GET /healthz` answers 200 when the database does.
The app is a plain WSGI callable: `whopfunnel_plugin.wsgi:make_app()` builds one for
gunicorn and the like.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import replace

from ..errors import ConfigError
from ..events import MemberJoined, MembershipEnded, MessageReceived
from ..storage import store as s
from ..whop import webhooks

log = logging.getLogger("whopfunnel.server")
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
        if path != "/webhooks/whop":
            return _answer(start_response, 404, {"error": f"no route {path}"})
        if method != "POST":
            return _answer(start_response, 405, {"error": "use POST"}, [("Allow", "POST")])
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
            status, answer = self.handle(headers, body)
        except webhooks.WebhookError as exc:
            log.info("webhook refused (%d): %s", exc.status, exc)
            return _answer(start_response, exc.status, {"error": str(exc)})
        except Exception:
            log.exception("webhook processing failed; Whop will retry it")
            return _answer(start_response, 500, {"error": "internal error; retry later"})
        return _answer(start_response, status, answer)

    def handle(self, headers: dict, body: bytes) -> tuple[int, dict]:
        """Verify, parse and process one delivery; returns (status, JSON answer)."""
        now = self.runtime.clock.now()
        delivery = webhooks.verify(headers, body, self.secret, now=now.timestamp())
        envelope = webhooks.parse(body, max_bytes=self.max_body)
        if s.ProcessedEvent.get_or_none(s.ProcessedEvent.webhook_id == delivery) is not None:
            return 200, {"status": "duplicate"}
        chosen: dict = {}
        event = webhooks.to_event(envelope, bot_user_id=self.bot_user_id,
                                  route=lambda info: self._route(info, chosen))
        if isinstance(event, (MemberJoined, MembershipEnded)):
            # the join/end and its delivery id commit together: a redelivery is a no-op
            event = replace(event, delivery_id=delivery)
        if isinstance(event, MemberJoined) and chosen.get("funnel"):
            event = replace(event, funnel_id=chosen["funnel"])  # routed once, here
        if isinstance(event, webhooks.Ignored):
            log.info("webhook %s (%s) ignored: %s", delivery, envelope.type, event.reason)
            answer = {"status": "ignored", "reason": event.reason}
        else:
            answer = {"status": self._process(event)}
            self.on_commit()
        s.ProcessedEvent.insert(webhook_id=delivery, received_at=now).on_conflict_ignore().execute()
        return 200, answer

    def _process(self, event) -> str:
        host = self.runtime.host
        if isinstance(event, MemberJoined):
            results = self.pm.hook.on_member_join(event=event)
        elif isinstance(event, MessageReceived):
            results = self.pm.hook.on_message(message=event)
        else:
            assert isinstance(event, MembershipEnded)
            return host.end(event).status
        outcome = next((r for r in results if hasattr(r, "status")), None)
        return outcome.status if outcome else "processed"

    def _route(self, info: dict, chosen: dict) -> str | None:
        """The tenant for a delivery: a DM goes where its member's conversation is."""
        if info.get("experience_id"):
            return info["experience_id"]
        if info.get("user_id"):
            row = self.runtime.store.route_dm(info["user_id"], info.get("channel_id"))
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
            self.runtime.store.db.execute_sql("SELECT 1")
        except Exception as exc:
            return _answer(start_response, 503, {"status": "database unavailable",
                                                 "error": type(exc).__name__})
        return _answer(start_response, 200, {"status": "ok"})


def _answer(start_response, status: int, payload: dict, extra=()):
    body = json.dumps(payload).encode()
    start_response(f"{status} {REASONS.get(status, '')}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                    *extra])
    return [body]


class Service:
    """The whole host in one process: waitress serving the app, plus the jobs."""

    def __init__(self, pm, app: WebhookApp, jobs, *, host: str, port: int, threads: int = 4):
        import waitress

        self.pm = pm
        self.app = app
        self.jobs = jobs
        self.server = waitress.create_server(app, host=host, port=port, threads=threads,
                                             ident="whopfunnel")
        self._stopping = threading.Event()
        self.stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self.server.effective_host}:{self.server.effective_port}"

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    def run(self) -> None:
        """Serve until stop(); then the in-flight requests and job finish, nothing is cut."""
        self.jobs.start()
        try:
            self.server.run()
        finally:
            self.jobs.stop()
            self.pm.runtime.close()
            self.stopped.set()

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish, then end the loop (any thread)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.server.trigger.pull_trigger(self._close_listener)

    def _close_listener(self) -> None:  # runs in waitress's loop thread
        from waitress import wasyncore

        # Only the listening socket: waitress's server.close() also closes the trigger, and
        # then _drain could never close an idle keep-alive connection, so the loop (and
        # SIGTERM) would wait for the client to hang up.
        wasyncore.dispatcher.close(self.server)
        threading.Thread(target=self._drain, name="whopfunnel-drain", daemon=True).start()

    def _drain(self) -> None:
        from waitress import wasyncore

        self.server.task_dispatcher.shutdown(cancel_pending=False, timeout=10)
        try:
            self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.server._map))
        except OSError:
            pass  # the loop already ended once the listener closed: nothing left to close


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
    # Answer webhooks fast: sending and hook calls (the owner's DM) happen in the job
    # thread right after the commit, not in the request.
    runtime.inline_delivery = False
    runtime.host.inline_effects = False
    jobs = JobRunner()
    jobs.every(1, "outbox", runtime.dispatcher.run_once, urgent=True)
    jobs.every(1, "hooks", runtime.host.fire_due, urgent=True)
    if config.poll_every:
        poller = Poller(pm, bot_user_id=bot_user_id, requests_per_minute=config.poll_budget)
        jobs.every(config.poll_every, "poll", poller.run_once)
    jobs.every(config.sweep_every, "sweep", runtime.host.sweep)
    app = WebhookApp(pm, secret=secret, bot_user_id=bot_user_id, on_commit=jobs.wake)
    return app, jobs


def build_service(pm, *, host: str | None = None, port: int | None = None, environ=None) -> Service:
    """`whopfunnel serve`: waitress on host:port (plugin.yaml's server section by default)."""
    app, jobs = wire(pm, environ)
    config = pm.runtime.config
    return Service(pm, app, jobs, host=host or config.host,
                   port=config.port if port is None else port)
