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
    from whopfunnel_plugin.storage import Store

    s = Store(db_url)
    s.upgrade()
    yield s
    s.close()


@pytest.fixture
def sqlite_store(db_url_factory):
    from whopfunnel_plugin.storage import Store

    s = Store(db_url_factory("sqlite"))
    s.upgrade()
    yield s
    s.close()


@pytest.fixture
def fake(clock):
    """The built-in fake Whop API, reached in-process through httpx's WSGI transport."""
    from whopfunnel_plugin.whop.fake import FakeWhop

    return FakeWhop(owners={"biz_1": "user_owner"}, clock=clock)


def whop_client(fake, **kwargs):
    import httpx

    from whopfunnel_plugin.whop.client import WhopClient

    return WhopClient(fake.api_key, base_url="http://whop.test/api/v1",
                      transport=httpx.WSGITransport(app=fake), sleep=lambda s: None, **kwargs)


@pytest.fixture
def make_pm(tmp_path, fake, clock, db_url_factory):
    """Build a plugin manager on a fresh database, plugin.yaml and the fake Whop API."""
    from whopfunnel_plugin import make_plugin_manager
    from whopfunnel_plugin.storage import Store

    made = []

    def make(extra_yaml: str = "", *, environ=None, entrypoints=False, engine="sqlite",
             funnels=("onboarding.yaml", "qualification.yaml"), routes=None, delivery="inline"):
        url = db_url_factory(engine)
        fresh = Store(url)
        fresh.upgrade()
        fresh.close()
        folder = tmp_path / "funnels"
        folder.mkdir(exist_ok=True)
        for name in funnels:
            (folder / name).write_bytes((FUNNELS / name).read_bytes())
        config = tmp_path / "plugin.yaml"
        routes = routes or ["{product: prod_q, funnel: qualification}",
                            "{default: true, funnel: onboarding}"]
        config.write_text(f"database: {url}\nfunnels: funnels/\nroutes:\n"
                          + "".join(f"  - {r}\n" for r in routes) + extra_yaml)
        pm = make_plugin_manager(config, environ=environ or {}, clock=clock,
                                 client=whop_client(fake), entrypoints=entrypoints,
                                 delivery=delivery)
        made.append(pm)
        return pm

    yield make
    for pm in made:
        pm.close()
