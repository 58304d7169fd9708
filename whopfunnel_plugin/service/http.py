"""The HTTP edge: waitress with bounded limits, and the service's start and stop.

waitress's defaults suit a trusted network, not an endpoint on the internet: a 1 GiB
request body is read (and spooled to disk) before the app sees it, and 100 slow
connections (one header line every few seconds) keep everyone else out. Here:
- a body over `MAX_BODY` is refused with 413 from its Content-Length header, unread,
  and a chunked body as soon as it passes the limit;
- headers are limited to `MAX_HEADER` bytes;
- a request must arrive whole within `REQUEST_TIMEOUT` seconds of its first byte, and a
  connection idle for `IDLE_TIMEOUT` seconds is closed;
- up to `CONNECTION_LIMIT` connections are served at once (poll(), not select(), so the
  1,024-descriptor limit of select() does not apply).
A reverse proxy in front should still terminate TLS, cap request rates per client and
buffer slow clients (README "Deploying").
"""

from __future__ import annotations

import signal
import threading
import time

MAX_BODY = 1_048_576  # the webhook body limit (Whop's payloads are a few KB)
MAX_HEADER = 64 * 1024
REQUEST_TIMEOUT = 10.0  # seconds from a request's first byte to its last
IDLE_TIMEOUT = 30  # seconds a keep-alive connection may sit idle
CONNECTION_LIMIT = 1000
CLEANUP_EVERY = 1  # seconds between checks of the two timeouts


def make_server(app, *, host: str, port: int, threads: int = 4,
                request_timeout: float = REQUEST_TIMEOUT, idle_timeout: int = IDLE_TIMEOUT,
                connection_limit: int = CONNECTION_LIMIT):
    import waitress

    server = waitress.create_server(
        app, host=host, port=port, threads=threads, ident="whopfunnel",
        # waitress refuses a body whose Content-Length is >= this, so exactly MAX_BODY passes
        max_request_body_size=MAX_BODY + 1, max_request_header_size=MAX_HEADER,
        channel_timeout=idle_timeout, connection_limit=connection_limit,
        cleanup_interval=CLEANUP_EVERY, asyncore_use_poll=True)
    _enforce_request_deadline(server, request_timeout)
    return server


def _enforce_request_deadline(server, timeout: float) -> None:
    """Close connections whose request has been arriving for longer than `timeout`
    (waitress only knows an idle timeout, which a byte every few seconds resets)."""
    idle_check = server.maintenance
    started: dict[int, tuple[object, float]] = {}  # channel id -> (partial request, first seen)

    def maintenance(now):
        idle_check(now)
        seen = set()
        for channel_id, channel in list(server.active_channels.items()):
            partial = getattr(channel, "request", None)
            if partial is None or channel.requests:
                continue
            seen.add(channel_id)
            known = started.get(channel_id)
            if known is None or known[0] is not partial:
                started[channel_id] = (partial, now)
            elif now - known[1] > timeout:
                channel.will_close = True
        for channel_id in set(started) - seen:
            del started[channel_id]

    server.maintenance = maintenance


class Service:
    """The whole host in one process: waitress serving the app, plus the jobs."""

    def __init__(self, pm, app, jobs, *, host: str, port: int, threads: int = 4, **limits):
        self.pm = pm
        self.app = app
        self.jobs = jobs
        self.server = make_server(app, host=host, port=port, threads=threads, **limits)
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
            self.pm.close()
            self.stopped.set()

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish, then end the loop (any thread)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.server.trigger.pull_trigger(self._close_listener)

    def _close_listener(self) -> None:  # runs in waitress's loop thread
        from waitress import wasyncore

        # The listening socket leaves the loop; the trigger and the connections stay.
        wasyncore.dispatcher.close(self.server)
        threading.Thread(target=self._drain, name="whopfunnel-drain", daemon=True).start()

    def _drain(self) -> None:
        """Answer what was already received, then close every connection from the loop
        thread itself (closing sockets under the loop is what made EBADF tracebacks)."""
        dispatcher = self.server.task_dispatcher
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (dispatcher.active_count or dispatcher.queue or any(
                getattr(c, "total_outbufs_len", 0) for c in list(self.server._map.values()))):
            time.sleep(0.02)
        dispatcher.shutdown(cancel_pending=False, timeout=1)
        done = threading.Event()

        def close_all():
            from waitress import wasyncore

            wasyncore.close_all(self.server._map)
            done.set()

        try:
            self.server.trigger.pull_trigger(close_all)
        except OSError:
            return  # the loop ended already: nothing left to close
        done.wait(5)
