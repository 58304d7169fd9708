"""Real processes for fault tests and the soak (bench/soak.py): a private PostgreSQL
cluster that can be restarted, `whopfunnel serve` workers that can be killed, and
signed webhooks posted over loopback."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from whopfunnel_plugin.whop.fake import FakeWhop


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout=30.0, what="condition", every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def postgres_bin() -> Path | None:
    """The folder of initdb/pg_ctl, or None where PostgreSQL's server binaries are missing."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class PrivatePostgres:
    """A PostgreSQL cluster of our own (initdb in a temp folder, run as the postgres
    user, on its own port), so a test can restart it without touching the machine's."""

    def __init__(self, port: int | None = None):
        self.bin = postgres_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="wf-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "pg.log"
        as_root = os.geteuid() == 0
        self._prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
        if as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")

    def _run(self, tool: str, *args: str, check: bool = True):
        return subprocess.run([*self._prefix, str(self.bin / tool), *args], check=check,
                              capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, down_for: float = 1.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                                dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.url(name)

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class Workers:
    """`whopfunnel serve` processes on one plugin.yaml (one port each), startable and killable."""

    def __init__(self, folder: Path, env: dict, count: int = 1):
        self.folder = folder
        self.env = env
        self.ports = [free_port() for _ in range(count)]
        self.procs: list[subprocess.Popen | None] = [None] * count
        self.cmd = [sys.executable, "-m", "whopfunnel_plugin"]

    def run(self, *args: str, check: bool = True):
        return subprocess.run([*self.cmd, *args], cwd=self.folder, env=self.env, check=check,
                              timeout=120, capture_output=True, text=True)

    def start(self, i: int = 0, wait: bool = True) -> subprocess.Popen:
        log = open(self.folder / f"worker-{i}.log", "a")  # noqa: SIM115 - the process keeps it
        proc = subprocess.Popen([*self.cmd, "serve", "--port", str(self.ports[i])],
                                cwd=self.folder, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT)
        self.procs[i] = proc
        if wait:
            wait_for(lambda: self.healthy(i), timeout=60, what=f"worker {i} to answer /healthz")
        return proc

    def start_all(self) -> None:
        for i in range(len(self.ports)):
            self.start(i, wait=False)
        for i in range(len(self.ports)):
            wait_for(lambda i=i: self.healthy(i), timeout=60, what=f"worker {i}")

    def url(self, i: int = 0) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    def healthy(self, i: int = 0) -> bool:
        try:
            return httpx.get(self.url(i) + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self, i: int = 0) -> None:
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for i, proc in enumerate(self.procs):
            if proc is None:
                continue
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill(i)

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.folder.glob("worker-*.log")))


def post_webhook(url: str, envelope: dict, secret: str, *, timeout: float = 10.0) -> httpx.Response:
    body = json.dumps(envelope).encode()
    headers = FakeWhop.sign(body, secret, envelope["id"], int(time.time()))
    return httpx.post(url + "/webhooks/whop", content=body, headers=headers, timeout=timeout)


def deliver(urls: list[str], envelope: dict, secret: str, *, give_up_after: float = 60.0) -> dict:
    """Post a webhook as Whop would: to the next worker on a connection error or a 5xx,
    again and again until it is taken (2xx) or refused for good (4xx)."""
    deadline = time.monotonic() + give_up_after
    i = 0
    while True:
        url = urls[i % len(urls)]
        i += 1
        try:
            answer = post_webhook(url, envelope, secret)
            if answer.status_code < 500:
                return {"status_code": answer.status_code, **answer.json()}
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"webhook {envelope['id']} was never accepted")
        time.sleep(0.2)


def plugin_yaml(folder: Path, database: str, fake_url: str, *, funnels=("onboarding",),
                extra: str = "", routes: str | None = None) -> None:
    from .conftest import FUNNELS

    (folder / "funnels").mkdir(exist_ok=True)
    for name in funnels:
        (folder / "funnels" / f"{name}.yaml").write_bytes((FUNNELS / f"{name}.yaml").read_bytes())
    routes = routes or "  - {product: prod_1, experience: exp_1, funnel: onboarding}\n"
    (folder / "plugin.yaml").write_text(
        f"database: {database}\nfunnels: funnels/\nroutes:\n{routes}"
        f"whop:\n  base_url: {fake_url}/api/v1\n  poll_every: 0\n{extra}")


def serve_env(fake, secret: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WHOP", "DATABASE_URL", "WHOPFUNNEL_CONFIG"))}
    env.update(WHOP_API_KEY=fake.api_key, WHOP_WEBHOOK_SECRET=secret,
               WHOP_BOT_USER_ID=fake.bot_user["id"], PYTHONUNBUFFERED="1", **extra)
    return env
