"""`whopfunnel fake-whop` and `whopfunnel serve` as two real processes on loopback, as the README says."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from ..conftest import FUNNELS

CMD = [sys.executable, "-m", "whopfunnel_plugin"]


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


def read_until(proc, marker: str, timeout=30.0) -> str:
    """The process's stdout up to the line holding `marker`."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"no {marker!r} in {''.join(seen)!r}")


@pytest.fixture
def procs():
    started = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_serve_runs_against_fake_whop_driven_over_http(tmp_path, procs):
    serve_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHOP", "DATABASE_URL"))}
    env["PYTHONUNBUFFERED"] = "1"
    fake = subprocess.Popen([*CMD, "fake-whop", "--port", "0", "--webhook-url",
                             f"http://127.0.0.1:{serve_port}/webhooks/whop"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(fake)
    printed = read_until(fake, "_fake/faults")
    base = re.search(r"fake Whop API on (http://127\.0\.0\.1:\d+)/api/v1", printed)[1]
    exports = dict(re.findall(r"export (\w+)=(\S+)", printed))
    assert set(exports) == {"WHOP_API_KEY", "WHOP_WEBHOOK_SECRET", "WHOP_BOT_USER_ID"}
    assert exports["WHOP_WEBHOOK_SECRET"].startswith("ws_")
    assert f"base_url: {base}/api/v1" in printed

    (tmp_path / "funnels").mkdir()
    (tmp_path / "funnels" / "onboarding.yaml").write_bytes((FUNNELS / "onboarding.yaml").read_bytes())
    (tmp_path / "plugin.yaml").write_text(
        f"database: sqlite:///{tmp_path / 'wf.db'}\nfunnels: funnels/\n"
        "routes:\n  - {product: prod_fake, experience: exp_fake, funnel: onboarding}\n"
        f"whop:\n  base_url: {base}/api/v1\n  poll_every: 0\n"
        f"server:\n  host: 127.0.0.1\n  port: {serve_port}\n")
    env.update(exports)
    subprocess.run([*CMD, "db", "upgrade"], cwd=tmp_path, env=env, check=True, timeout=60,
                   capture_output=True)
    serve = subprocess.Popen([*CMD, "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    procs.append(serve)

    def healthy():
        try:
            return httpx.get(f"http://127.0.0.1:{serve_port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, what="serve to answer /healthz")

    def act(path, **body):
        return httpx.post(f"{base}/_fake/{path}", json=body, timeout=10).json()

    def sent():
        return [m["content"] for m in httpx.get(f"{base}/_fake/sent", timeout=5).json()["data"]]

    joined = act("join", user_id="user_ada", product_id="prod_fake")
    assert joined["delivery"] == {"status": 200, "answer": {"status": "started"}}
    wait_for(lambda: sent() == ["Welcome, friend! What brings you here?\n\n1. Trading & Investing\n"
                                "2. Just exploring for now"], what="the welcome DM")
    system = act("system", user_id="user_ada", text="2")  # a "2" that is no reply of Ada's
    assert system["delivery"]["answer"] == {"status": "ignored",
                                            "reason": "a system message, not a member's reply"}
    assert act("say", user_id="user_ada", text="2")["delivery"]["answer"] == {"status": "ended"}
    wait_for(lambda: sent()[-1:] == ["Thanks for stopping by!"], what="the goodbye")
    nobody = act("join", user_id=None, product_id="prod_fake")
    assert nobody["delivery"]["answer"]["status"] == "ignored"
    requests = httpx.get(f"{base}/_fake/requests", timeout=5).json()["data"]
    assert {r["api_version_date"] for r in requests} == {"2026-10-15-1"}
    assert all(r["idempotency_key"] for r in requests if r["path"] == "/messages")

    # The fake keeps its webhook connection to serve alive: SIGTERM must not wait for it.
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(20) == 0
    fake.send_signal(signal.SIGTERM)
    assert fake.wait(20) == 0
    out, err = fake.communicate(timeout=5)
    secret = exports["WHOP_WEBHOOK_SECRET"]
    assert "fake Whop API stopped" in err
    assert exports["WHOP_API_KEY"] not in out + err and secret not in out + err  # printed once, above
    assert exports["WHOP_API_KEY"] not in serve.stdout.read()
