"""PostgreSQL and MariaDB helpers: scratch databases the bench creates and drops itself,
server-side CPU and WAL per round, and a private PgBouncer in transaction mode.

Never touches the shared servers' configuration or state: only `CREATE DATABASE` /
`DROP DATABASE` of uniquely named databases, and reads of `pg_stat_activity` and the
WAL position. PgBouncer, when installed, runs as its own process on its own port,
from a config in a temporary folder, and is stopped by its process id.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

PG_ADMIN = os.environ.get("WHOPFUNNEL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgDatabase:
    """A freshly created, uniquely named database; `drop()` removes it."""

    def __init__(self):
        import psycopg2

        self.name = f"wf_bench_{uuid.uuid4().hex[:12]}"
        self.admin = psycopg2.connect(PG_ADMIN, connect_timeout=3)
        self.admin.autocommit = True
        with self.admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{self.name}"')
        self.url = PG_ADMIN.rsplit("/", 1)[0] + "/" + self.name

    def via(self, port: int) -> str:
        """The same database through a proxy or pooler on `port` (unencrypted, so it can be read)."""
        return f"postgresql://postgres@127.0.0.1:{port}/{self.name}?sslmode=disable"

    def server_cpu(self) -> float:
        """CPU seconds used so far by the server processes serving this database."""
        with self.admin.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.name,))
            pids = [row[0] for row in cur.fetchall()]
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    def wal_lsn(self) -> int:
        with self.admin.cursor() as cur:
            cur.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
            return int(cur.fetchone()[0])

    def drop(self) -> None:
        with self.admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.admin.close()


class MariaDatabase:
    def __init__(self):
        import pymysql

        self.name = f"wf_bench_{uuid.uuid4().hex[:12]}"
        self.admin = pymysql.connect(connect_timeout=3, autocommit=True, **MYSQL)
        with self.admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4")

    def via(self, port: int) -> str:
        return f"mysql://root@127.0.0.1:{port}/{self.name}"

    def drop(self) -> None:
        with self.admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
        self.admin.close()


class PgBouncer:
    """A private PgBouncer (transaction pooling) in front of 127.0.0.1:5432."""

    def __init__(self, pool_size: int = 8):
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(binary).exists():
            raise FileNotFoundError("pgbouncer is not installed (`apt-get install -y pgbouncer`)")
        self.folder = folder = Path(tempfile.mkdtemp(prefix="wf_bench_pgbouncer_"))
        self.port = free_port()
        (folder / "userlist.txt").write_text('"postgres" ""\n')
        (folder / "pgbouncer.ini").write_text(f"""\
[databases]
* = host=127.0.0.1 port=5432

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/userlist.txt
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 200
logfile = {folder}/pgbouncer.log
ignore_startup_parameters = extra_float_digits
""")
        as_user = {}
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            owner = pwd.getpwnam("postgres")
            for path in (folder, *folder.iterdir()):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            as_user = {"user": owner.pw_uid, "group": owner.pw_gid}
        self.proc = subprocess.Popen([binary, str(folder / "pgbouncer.ini")], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, **as_user)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self.proc.stderr.read().decode()[-300:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("pgbouncer did not listen within 10 s")

    def log(self) -> str:
        try:
            return (self.folder / "pgbouncer.log").read_text()[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
