"""A minimal stand-in for the Whop API: accepts every send and remembers nothing.

DM channel ids are a function of the member (`feed_bench_<user id>`), so conversations
joined through an `httpx.MockTransport` on this same logic are bound to the channel ids
that the pre-signed webhook bodies name, and `whopfunnel serve` can deliver to them
later over HTTP. (The built-in `FakeWhop` keeps every message and draws random channel
ids: fine for tests, more CPU than a benchmark's fake API should take from the server.)
"""

from __future__ import annotations

import itertools
import json
import os
import threading

_ids = itertools.count()
_lock = threading.Lock()
_sent = [0]  # messages posted, for a figure that waits until the server's outbox is empty
_prefix = os.urandom(4).hex()  # message ids unique across processes (the store keeps them unique)


def channel_of(user: str) -> str:
    return f"feed_bench_{user}"


def answer(method: str, path: str, body: dict) -> tuple[int, dict]:
    path = path.split("?", 1)[0].rstrip("/")
    if path.startswith("/api/v1"):
        path = path[len("/api/v1"):]
    if method == "POST" and path == "/dm_channels":
        users = body.get("with_user_ids") or ["nobody"]
        return 200, {"id": channel_of(users[0]), "created_at": None, "last_message_at": None,
                     "name": users[0]}
    if method == "POST" and path == "/messages":
        with _lock:
            _sent[0] += 1
        return 200, {"id": f"msg_out_{_prefix}_{os.getpid()}_{next(_ids)}",
                     "content": body.get("content", ""),
                     "user": {"id": "user_bot", "username": "bot", "name": "Bot"}}
    if method == "GET" and path.startswith("/companies/"):
        return 200, {"id": path.rsplit("/", 1)[1], "owner_user": {"id": "user_owner"}}
    if method == "POST" and path == "/notifications":
        return 200, {"success": True}
    if method == "GET" and path == "/messages":
        return 200, {"data": [], "page_info": {"end_cursor": None, "has_next_page": False}}
    return 404, {"error": {"message": f"no route {method} {path}"}}


def accepting_transport():
    import httpx

    def handle(request):
        body = json.loads(request.content or b"{}") if request.method == "POST" else {}
        status, result = answer(request.method, request.url.path, body)
        return httpx.Response(status, json=result)

    return httpx.MockTransport(handle)


def wsgi_app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    status, result = answer(environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/"),
                            json.loads(raw or b"{}"))
    data = json.dumps(result).encode()
    start_response(f"{status} {'OK' if status == 200 else 'Not Found'}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def empty_app(environ, start_response):
    """The empty WSGI app the webhook endpoint is compared with: reads the body, answers 200."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    data = b'{"status": "ok"}'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


class Served:
    """`app` on waitress in this (worker) process, on a free loopback port."""

    def __init__(self, app: str, threads: int = 4):
        import logging

        from waitress import create_server

        logging.getLogger("waitress").setLevel(logging.ERROR)  # "Task queue depth is N" at every burst
        chosen = {"api": wsgi_app, "empty": empty_app}[app]
        self.server = create_server(chosen, host="127.0.0.1", port=0, threads=threads, ident="bench")
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.effective_port}"

    def sent(self) -> int:
        with _lock:
            return _sent[0]

    def close(self) -> None:
        from waitress import wasyncore

        self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.server._map))
        self.thread.join(timeout=5)
        self.server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
