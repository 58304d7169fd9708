"""`whopfunnel serve` as a real process: signed webhooks over HTTP, the fake Whop API,
a SIGKILL with replies pending, a restart, and every reply delivered exactly once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from whopfunnel_plugin.whop.fake import FakeWhop, serve_in_thread

from ..conftest import FUNNELS

SECRET = "ws_e2e_secret_value"
BAD_EMAIL = "That doesn't look like an email address. Please check it and send it again."
WELCOME = "Welcome, friend! What brings you here?\n\n1. Trading & Investing\n2. Just exploring for now"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def world(tmp_path):
    fake = FakeWhop("e2e_api_key", owners={"biz_1": "user_owner"})
    fake_url, stop_fake = serve_in_thread(fake)
    port = free_port()
    (tmp_path / "funnels").mkdir()
    (tmp_path / "funnels" / "onboarding.yaml").write_bytes((FUNNELS / "onboarding.yaml").read_bytes())
    (tmp_path / "plugin.yaml").write_text(
        f"database: sqlite:///{tmp_path / 'wf.db'}\nfunnels: funnels/\n"
        "routes:\n  - {product: prod_1, experience: exp_1, funnel: onboarding}\n"
        f"whop:\n  base_url: {fake_url}/api/v1\n  poll_every: 0\n"
        f"server:\n  host: 127.0.0.1\n  port: {port}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHOP", "DATABASE_URL"))}
    env.update(WHOP_API_KEY=fake.api_key, WHOP_WEBHOOK_SECRET=SECRET,
               WHOP_BOT_USER_ID=fake.bot_user["id"], PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "whopfunnel_plugin"]
    subprocess.run([*cmd, "db", "upgrade"], cwd=tmp_path, env=env, check=True, timeout=60,
                   capture_output=True)
    procs = []

    def start():
        proc = subprocess.Popen([*cmd, "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        wait_for(lambda: _healthy(port), what="the server to answer /healthz")
        return proc

    yield fake, port, start, tmp_path
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    stop_fake()


def _healthy(port) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def post(port, envelope, *, msg_id=None, secret=SECRET):
    body = json.dumps(envelope).encode()
    headers = FakeWhop.sign(body, secret, msg_id or envelope["id"], int(time.time()))
    return httpx.post(f"http://127.0.0.1:{port}/webhooks/whop", content=body, headers=headers,
                      timeout=10)


def test_serve_end_to_end_with_a_crash_and_restart(world):
    fake, port, start, tmp_path = world
    proc = start()
    channel = fake.channel_for("user_ada", "biz_1")

    def dms():
        return [m["content"] for m in fake.sent_messages(channel)]

    joined = post(port, fake.membership_activated("user_ada", "prod_1", "biz_1"))
    assert (joined.status_code, joined.json()["status"]) == (200, "started")
    wait_for(lambda: dms() == [WELCOME], what="the welcome DM")
    reply = fake.member_says("user_ada", "1", company_id="biz_1")
    assert post(port, reply).json()["status"] == "advanced"
    assert post(port, reply).json()["status"] == "duplicate"  # Whop retries reuse the id
    wait_for(lambda: len(dms()) == 3, what="the guide and the email question")

    fake.fail_next(100_000, status=503)  # Whop goes down: replies wait in the outbox
    invalid = post(port, fake.member_says("user_ada", "not-an-email", company_id="biz_1"))
    assert invalid.json()["status"] == "advanced"

    def pending():
        import sqlite3

        with sqlite3.connect(tmp_path / "wf.db") as db:
            return db.execute("SELECT text, attempts FROM messages WHERE direction='out' "
                              "AND status != 'sent' ORDER BY id").fetchall()

    wait_for(lambda: pending() and pending()[0][1] >= 1, what="a failed delivery attempt")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert [text for text, _ in pending()] == [BAD_EMAIL, "What's the best email to send it to?"]
    fake.clear_faults()
    proc = start()
    wait_for(lambda: len(dms()) == 5, timeout=40, what="the pending replies after the restart")
    post(port, fake.member_says("user_ada", "ada@example.com", company_id="biz_1"))
    post(port, fake.member_says("user_ada", "no thanks", company_id="biz_1"))
    wait_for(lambda: dms()[-1:] == ["Thanks for stopping by!"], what="the goodbye")
    time.sleep(0.5)  # anything sent twice would show up now
    assert dms() == [
        WELCOME,
        "Here is the free guide: https://example.com/guide",
        "What's the best email to send it to?",
        BAD_EMAIL,
        "What's the best email to send it to?",
        "Thanks! We'll send extra material to ada@example.com. Want a 1:1 strategy session?\n\n"
        "1. Yes, book me\n2. No thanks",
        "Thanks for stopping by!",
    ]
    import sqlite3

    with sqlite3.connect(tmp_path / "wf.db") as db:
        assert db.execute("SELECT status, end_reason, variables FROM conversations").fetchall() == [
            ("completed", "completed", '{"email": "ada@example.com"}')]
        assert db.execute("SELECT count(*) FROM messages WHERE direction='out' AND "
                          "status != 'sent'").fetchone() == (0,)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert "whopfunnel stopped" in proc.stdout.read()


def test_webhook_status_codes(world):
    fake, port, start, _ = world
    start()
    url = f"http://127.0.0.1:{port}/webhooks/whop"
    envelope = fake.membership_activated("user_x", "prod_1", "biz_1")
    assert post(port, envelope, secret="ws_wrong").status_code == 401
    assert httpx.post(url, content=b"{}", timeout=5).status_code == 401  # no signature headers
    bad = b"{not json"
    headers = FakeWhop.sign(bad, SECRET, "evt_bad", int(time.time()))
    assert httpx.post(url, content=bad, headers=headers, timeout=5).status_code == 400
    big = b" " * (1024 * 1024 + 1)
    assert httpx.post(url, content=big, headers=FakeWhop.sign(big, SECRET, "evt_big",
                                                               int(time.time())),
                      timeout=5).status_code == 413
    assert httpx.get(url, timeout=5).status_code == 405
    unknown = {"id": "evt_u", "type": "payment.succeeded", "data": {}}
    answer = post(port, unknown)
    assert (answer.status_code, answer.json()["status"]) == (200, "ignored")
    assert post(port, unknown).json()["status"] == "duplicate"
    unrouted = post(port, fake.membership_activated("user_y", "prod_other", "biz_2"))
    assert unrouted.json() == {"status": "ignored", "reason": "no route for product prod_other"}
    assert httpx.get(f"http://127.0.0.1:{port}/nope", timeout=5).status_code == 404
