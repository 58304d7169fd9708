"""Serving a WSGI app (the fake Whop API) with waitress on loopback, in a daemon thread."""

from __future__ import annotations

import threading
from collections.abc import Callable


def serve_in_thread(app: Callable, host: str = "127.0.0.1", port: int = 0,
                    threads: int = 4) -> tuple[str, Callable[[], None]]:
    """Serve `app` with waitress in a daemon thread; returns (base URL, stop)."""
    from waitress import create_server, wasyncore

    server = create_server(app, host=host, port=port, threads=threads, ident="fakewhop")
    thread = threading.Thread(target=server.run, name="fakewhop", daemon=True)
    thread.start()

    def stop() -> None:
        # Close every socket from inside the loop's own thread (via its trigger), so the
        # loop sees an empty map and returns instead of racing a close from outside.
        try:
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        except OSError:  # the trigger is gone (the loop ended): close what is left from here
            wasyncore.close_all(server._map)
        thread.join(timeout=5)
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)

    return f"http://{host}:{server.effective_port}", stop
