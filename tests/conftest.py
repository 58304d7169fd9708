"""Shared fixtures: a settable clock, fresh databases on every reachable engine."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from whopfunnel_plugin.clock import FixedClock

ROOT = Path(__file__).resolve().parent.parent
FUNNELS = ROOT / "funnels"
PG_ADMIN = os.environ.get("WHOPFUNNEL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MY_ADMIN = os.environ.get("WHOPFUNNEL_TEST_MYSQL", "mysql://root@127.0.0.1:3306/mysql")
# In CI the server databases are part of the contract: their absence fails instead of skipping.
REQUIRE_SERVERS = os.environ.get("WHOPFUNNEL_REQUIRE_SERVER_DBS") == "1"


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc))


def _unavailable(engine: str, reason: str):
    message = f"{engine} is not reachable ({reason}); server-database tests need it"
    if REQUIRE_SERVERS:
        pytest.fail(message + " [WHOPFUNNEL_REQUIRE_SERVER_DBS=1]")
    pytest.skip(message)


def _postgres_url():
    try:
        import psycopg2
    except ImportError as exc:
        _unavailable("PostgreSQL", f"psycopg2 missing: {exc}")
    name = f"wf_test_{uuid.uuid4().hex[:12]}"
    try:
        conn = psycopg2.connect(PG_ADMIN.replace("postgresql://", "postgres://"), connect_timeout=3)
    except Exception as exc:
        _unavailable("PostgreSQL", str(exc).strip().splitlines()[0])
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name

    def drop():
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()

    return url, drop


def _mysql_url():
    try:
        import pymysql
    except ImportError as exc:
        _unavailable("MariaDB", f"pymysql missing: {exc}")
    name = f"wf_test_{uuid.uuid4().hex[:12]}"
    try:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="",
                               connect_timeout=3, autocommit=True)
    except Exception as exc:
        _unavailable("MariaDB", str(exc))
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    url = MY_ADMIN.rsplit("/", 1)[0] + "/" + name

    def drop():
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()

    return url, drop


@pytest.fixture
def db_url_factory(tmp_path):
    """Make a fresh, empty database on an engine; dropped after the test."""
    drops = []

    def make(engine: str = "sqlite") -> str:
        if engine == "sqlite":
            return f"sqlite:///{tmp_path / f'wf-{uuid.uuid4().hex[:8]}.db'}"
        url, drop = _postgres_url() if engine == "postgres" else _mysql_url()
        drops.append(drop)
        return url

    yield make
    for drop in drops:
        drop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.server_db),
                        pytest.param("mysql", marks=pytest.mark.server_db)])
def db_url(request, db_url_factory):
    """A fresh database on each engine in turn."""
    return db_url_factory(request.param)


@pytest.fixture
def store(db_url):
    from whopfunnel_plugin.store import Store

    s = Store(db_url)
    s.upgrade()
    yield s
    s.close()


@pytest.fixture
def sqlite_store(db_url_factory):
    from whopfunnel_plugin.store import Store

    s = Store(db_url_factory("sqlite"))
    s.upgrade()
    yield s
    s.close()
