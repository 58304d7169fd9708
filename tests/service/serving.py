"""A real `whopfunnel serve` process on loopback against the fake Whop API, for the
operating tests (logs, probes, metrics, reload). Its stderr goes to a file, read while
it runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from whopfunnel_plugin.whop.fake import FakeWhop, serve_in_thread

from ..conftest import FUNNELS

SECRET = "ws_ops_e2e_9f8e7d6c5b4a39281706"
API_KEY = "apik_ops_e2e_0a1b2c3d4e5f67890"


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


class Served:
    """One project folder (plugin.yaml, funnels/, database) and the serve processes on it."""

    def __init__(self, tmp_path: Path, *, database: str | None = None, extra_yaml: str = "",
                 env: dict | None = None):
        self.fake = FakeWhop(API_KEY, owners={"biz_1": "user_owner"})
        self.fake_url, self._stop_fake = serve_in_thread(self.fake)
        self.folder = tmp_path
        self.port = free_port()
        (tmp_path / "funnels").mkdir(exist_ok=True)
        self.funnel = tmp_path / "funnels" / "onboarding.yaml"
        self.funnel.write_bytes((FUNNELS / "onboarding.yaml").read_bytes())
        self.database = database or f"sqlite:///{tmp_path / 'wf.db'}"
        (tmp_path / "plugin.yaml").write_text(
            f"database: {self.database}\nfunnels: funnels/\n"
            "routes:\n  - {product: prod_1, experience: exp_1, funnel: onboarding}\n"
            f"whop:\n  base_url: {self.fake_url}/api/v1\n  poll_every: 0\n"
            f"server:\n  host: 127.0.0.1\n  port: {self.port}\n" + extra_yaml)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("WHOP", "DATABASE_URL"))}
        self.env.update(WHOP_API_KEY=API_KEY, WHOP_WEBHOOK_SECRET=SECRET,
                        WHOP_BOT_USER_ID=self.fake.bot_user["id"], PYTHONUNBUFFERED="1",
                        **(env or {}))
        self.procs: list[tuple[subprocess.Popen, Path]] = []
        self.cli("db", "upgrade")

    def cli(self, *args, check=True) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "whopfunnel_plugin", *args], cwd=self.folder,
                              env=self.env, check=check, timeout=120, capture_output=True,
                              text=True)

    def start(self, *args, ready=True) -> subprocess.Popen:
        log = self.folder / f"serve-{len(self.procs)}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "whopfunnel_plugin", "serve", *args],
                                    cwd=self.folder, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, text=True)
        self.procs.append((proc, log))
        if ready:
            wait_for(lambda: self.get("/readyz", ok=True), what="the server to be ready")
        return proc

    def log(self, index: int = -1) -> str:
        return self.procs[index][1].read_text()

    def get(self, path: str, ok: bool = False):
        try:
            answer = httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=2)
        except httpx.HTTPError:
            return None
        return answer if not ok or answer.status_code == 200 else None

    def post(self, envelope: dict, *, secret: str = SECRET) -> httpx.Response:
        body = json.dumps(envelope).encode()
        headers = FakeWhop.sign(body, secret, envelope["id"], int(time.time()))
        return httpx.post(f"http://127.0.0.1:{self.port}/webhooks/whop", content=body,
                          headers=headers, timeout=10)

    def join(self, user: str, name: str | None = None) -> httpx.Response:
        shape = "nested" if name else "current"  # only the older shape names the member
        return self.post(self.fake.membership_activated(user, "prod_1", "biz_1", shape=shape,
                                                        name=name))

    def say(self, user: str, text: str) -> httpx.Response:
        return self.post(self.fake.member_says(user, text, company_id="biz_1"))

    def dms(self, user: str) -> list[str]:
        return [m["content"] for m in self.fake.sent_messages(self.fake.channel_for(user, "biz_1"))]

    def stop(self, proc: subprocess.Popen) -> int:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(30)

    def close(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        self._stop_fake()
