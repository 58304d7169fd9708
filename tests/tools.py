"""Real processes for fault tests and the soak (bench/soak.py): a private PostgreSQL
cluster that can be restarted, `whopfunnel serve` workers that can be killed, signed
webhooks posted over loopback, a recorder plugin writing one line per hook call, and
`InFlight`, which tells which worker process a request to the fake Whop API came from
(so a worker can be killed while *its* send is in flight)."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

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
        self._http: httpx.Client | None = None  # probes share one (made when first needed)

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=3)
        return self._http

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
            return self.http.get(self.url(i) + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self, i: int = 0) -> None:
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def alive(self, i: int = 0) -> bool:
        proc = self.procs[i]
        return proc is not None and proc.poll() is None

    def pids(self) -> dict[int, int]:
        """pid -> worker index, for the workers running now."""
        return {p.pid: i for i, p in enumerate(self.procs) if p is not None and p.poll() is None}

    def accepts_webhooks(self, i: int, secret: str) -> bool:
        """True when worker `i` takes a (harmless) signed webhook: a write to its database."""
        try:
            answer = post_webhook(self.url(i), probe_envelope(), secret, timeout=3, client=self.http)
            return answer.status_code == 200
        except httpx.HTTPError:
            return False

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
        if self._http is not None:
            self._http.close()
            self._http = None

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.folder.glob("worker-*.log")))


def post_webhook(url: str, envelope: dict, secret: str, *, timeout: float = 10.0,
                 client: httpx.Client | None = None) -> httpx.Response:
    """Sign `envelope` as Whop does and POST it (on `client`'s pooled connections, if given)."""
    body = json.dumps(envelope).encode()
    headers = FakeWhop.sign(body, secret, envelope["id"], int(time.time()))
    return (client or httpx).post(url + "/webhooks/whop", content=body, headers=headers,
                                  timeout=timeout)


def deliver(urls: list[str], envelope: dict, secret: str, *, give_up_after: float = 60.0,
            client: httpx.Client | None = None) -> dict:
    """Post a webhook as Whop would: to the next worker on a connection error or a 5xx,
    again and again until it is taken (2xx) or refused for good (4xx). The answer's JSON,
    plus `status_code` and `tries` (posts made, the accepted one included)."""
    deadline = time.monotonic() + give_up_after
    i = 0
    while True:
        url = urls[i % len(urls)]
        i += 1
        try:
            answer = post_webhook(url, envelope, secret, client=client)
            if answer.status_code < 500:
                return {"status_code": answer.status_code, "tries": i, **answer.json()}
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"webhook {envelope['id']} was never accepted")
        time.sleep(0.2)


def probe_envelope() -> dict:
    """A webhook of a type whopfunnel ignores: answered 200 once its delivery id is stored
    (so only while the database is reachable), 503 otherwise. Changes nothing else."""
    return {"id": f"evt_probe_{os.urandom(8).hex()}", "api_version": "v1", "type": "soak.probe",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "account_id": "biz_probe", "data": {}}


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


# -- the recorder plugin: one line per hook call, from every worker --------------------------

RECORDER = '''\
"""Test plugin: one line per hook call (appended atomically, so several workers can share
the file): `<unix time> <pid> <hook> <conversation id> <detail>`. With WF_HOOK_SLEEP set,
each call first writes a `begin` line and then sleeps that many seconds."""
import os
import time

from whopfunnel_plugin import hookimpl

LOG = os.environ["WF_HOOK_LOG"]
SLEEP = float(os.environ.get("WF_HOOK_SLEEP") or 0)


def _write(hook, conversation, detail="-"):
    line = f"{time.time():.6f} {os.getpid()} {hook} {conversation.id} {detail}\\n"
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _record(hook, conversation, detail="-"):
    if SLEEP:
        _write("begin", conversation, hook)
        time.sleep(SLEEP)
    _write(hook, conversation, detail)


@hookimpl
def on_conversation_end(conversation):
    _record("on_conversation_end", conversation, conversation.end_reason)


@hookimpl
def on_timeout(conversation):
    _record("on_timeout", conversation)


@hookimpl
def on_owner_notify(conversation, reason, block, last_replies):
    _record("on_owner_notify", conversation, reason)


@hookimpl
def on_delivery_failed(conversation, text, error, attempts):
    _write("on_delivery_failed", conversation, str(attempts))
'''


def write_recorder(folder: Path, name: str = "wf_hook_recorder") -> str:
    """Write the recorder plugin module into `folder` (put it on PYTHONPATH); its name."""
    (folder / f"{name}.py").write_text(RECORDER)
    return name


def hook_calls(log: Path) -> list[dict]:
    """The recorder's lines: {at, pid, hook, conversation, detail}, in the order written."""
    if not log.exists():
        return []
    calls = []
    for line in log.read_text().splitlines():
        at, pid, hook, conversation, detail = line.split(" ", 4)
        calls.append({"at": float(at), "pid": int(pid), "hook": hook,
                      "conversation": int(conversation), "detail": detail})
    return calls


# -- which process a request came from ------------------------------------------------------

class InFlight:
    """WSGI middleware around the fake Whop API: the requests being answered right now,
    each with the client's port (see `socket_owner`) and its Idempotency-Key."""

    def __init__(self, app):
        self.app = app
        self._lock = threading.Lock()
        self._now: dict[int, dict] = {}
        self._next = 0

    def __getattr__(self, name):  # the fake's own methods (fail_next, sent_messages, ...)
        return getattr(self.app, name)

    def __call__(self, environ, start_response):
        with self._lock:
            self._next += 1
            token = self._next
            self._now[token] = {"method": environ.get("REQUEST_METHOD"),
                                "path": environ.get("PATH_INFO", ""),
                                "port": int(environ.get("REMOTE_PORT") or 0),
                                "key": environ.get("HTTP_IDEMPOTENCY_KEY"),
                                "since": time.monotonic()}
        try:
            return self.app(environ, start_response)
        finally:
            with self._lock:
                self._now.pop(token, None)

    def now(self, path_suffix: str = "") -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._now.values() if r["path"].endswith(path_suffix)]


def socket_owner(local_port: int, pids) -> int | None:
    """The pid among `pids` holding a loopback TCP socket bound to `local_port` (Linux /proc),
    or None."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == local_port:
                inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return pid
            except OSError:
                continue
    return None


# -- reading a server database directly (the checks; never the system's own classes) --------

def connect(url: str):
    """A DB-API connection (autocommit) to a postgresql://, mysql:// or sqlite:/// URL.
    PostgreSQL's and MariaDB's drivers take `%s` placeholders, SQLite's `?`."""
    if url.startswith("sqlite:///"):
        import sqlite3

        return sqlite3.connect(url[len("sqlite:///"):], timeout=10, isolation_level=None)
    parts = urlsplit(url)
    if parts.scheme.startswith("postgres"):
        import psycopg2

        conn = psycopg2.connect(host=parts.hostname, port=parts.port or 5432,
                                user=unquote(parts.username or "postgres"),
                                password=unquote(parts.password or ""),
                                dbname=parts.path.lstrip("/"), connect_timeout=3)
        conn.autocommit = True
        return conn
    if parts.scheme.startswith("mysql"):
        import pymysql

        return pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                               user=unquote(parts.username or "root"),
                               password=unquote(parts.password or ""),
                               database=parts.path.lstrip("/"), connect_timeout=3,
                               autocommit=True, charset="utf8mb4")
    raise ValueError(f"not a server database URL: {parts.scheme}://...")


def query(url: str, sql: str, params=()) -> list[dict]:
    """Rows of one query as dicts, on a connection of its own (survives a restarted server)."""
    conn = connect(url)
    try:
        cur = conn.cursor()
        cur.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
    finally:
        conn.close()
