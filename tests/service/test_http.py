"""The HTTP edge on a real waitress on loopback: body limits from the headers, slow
clients cut off, many of them never locking others out."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from whopfunnel_plugin.service.http import MAX_BODY, make_server
from whopfunnel_plugin.service.server import WebhookApp

SECRET = "ws_edge_test_secret"


@pytest.fixture
def edge(make_pm, fake):
    """The webhook app served by waitress with the project's limits (a short request
    deadline, so the test need not wait ten seconds)."""
    pm = make_pm(routes=["{product: prod_1, experience: exp_1, funnel: onboarding}"],
                 delivery="dispatcher")
    app = WebhookApp(pm, secret=SECRET, bot_user_id=fake.bot_user["id"])
    server = make_server(app, host="127.0.0.1", port=0, threads=2, request_timeout=1.5)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server.effective_host, server.effective_port
    finally:
        from waitress import wasyncore

        wasyncore.dispatcher.close(server)  # the listener; the trigger closes with the rest
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(5)


def raw(address, data: bytes, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(address, timeout=timeout)
    sock.sendall(data)
    return sock


def read_status(sock) -> str:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def test_a_huge_content_length_is_refused_before_the_body_is_sent(edge):
    head = (b"POST /webhooks/whop HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n")
    with raw(edge, head) as sock:
        assert read_status(sock) == "HTTP/1.1 413 Request Entity Too Large"


def test_a_chunked_body_is_refused_once_it_passes_the_limit(edge):
    head = (b"POST /webhooks/whop HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    with raw(edge, head) as sock:
        try:
            for _ in range(24):  # 1.5 MiB, and the body never ends (no last chunk)
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: it has answered already
        # An answer to an unfinished body: it was refused at the limit, not at its end.
        assert read_status(sock) == "HTTP/1.1 413 Request Entity Too Large"


def test_exactly_one_mib_still_reaches_the_app(edge):
    body = b'{"id": "evt_pad", "type": "payment.succeeded", "data": {}}'
    body += b" " * (MAX_BODY - len(body))
    answer = httpx.post(f"http://{edge[0]}:{edge[1]}/webhooks/whop", content=body, timeout=10)
    assert answer.status_code == 401  # it got past the edge: unsigned, so refused by the app


def test_a_slow_client_is_cut_off_and_others_are_served(edge):
    url = f"http://{edge[0]}:{edge[1]}/healthz"
    slow = [raw(edge, b"POST /webhooks/whop HTTP/1.1\r\n") for _ in range(150)]
    try:
        deadline = time.monotonic() + 20
        closed = set()
        while time.monotonic() < deadline and len(closed) < len(slow):
            for i, sock in enumerate(slow):  # one header line every half second each
                if i in closed:
                    continue
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    closed.add(i)
            assert httpx.get(url, timeout=5).status_code == 200  # never locked out
            time.sleep(0.5)
        assert len(closed) == len(slow)  # every slow request was cut off by the deadline
    finally:
        for sock in slow:
            sock.close()
