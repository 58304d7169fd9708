"""`db upgrade` from schema version 1 (the DDL whopfunnel 0.1.0 made, in tests/storage/v1/)
to the current one, in place, with the data of a running version-1 deployment."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from whopfunnel_plugin.events import MessageReceived
from whopfunnel_plugin.funnel.model import load_funnel
from whopfunnel_plugin.service.delivery import Dispatcher
from whopfunnel_plugin.service.host import Host
from whopfunnel_plugin.storage import SCHEMA_VERSION, Store

from ..conftest import FUNNELS, whop_client

V1 = Path(__file__).parent / "v1"
ONBOARDING = load_funnel(FUNNELS / "onboarding.yaml")
ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.server_db),
           pytest.param("mysql", marks=pytest.mark.server_db)]


def version_1(url: str, engine: str, now: datetime) -> None:
    """A version-1 database with what a running deployment had in it."""
    store = Store(url)
    try:
        db, p = store.db, store.db.param
        for statement in (V1 / f"{engine}.sql").read_text().split(";\n"):
            statement = "\n".join(line for line in statement.splitlines()
                                  if not line.startswith("--")).strip()
            if statement:
                db.execute_sql(statement)
        naive = now.replace(tzinfo=None)

        def insert(table, **values):
            names = ", ".join(f"{db.quote[0]}{n}{db.quote[1]}" for n in values)
            marks = ", ".join([p] * len(values))
            db.execute_sql(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(values.values()))

        insert("whopfunnel_schema", key="schema_version", value="1")
        insert("funnels", experience_id="exp_1", funnel_id="onboarding", version=ONBOARDING.version,
               definition=json.dumps(ONBOARDING.to_dict()), created_at=naive)
        insert("conversations", experience_id="exp_1", user_id="user_1", active_user="user_1",
               funnel_version_id=1, funnel_id="onboarding", block="welcome", status="active",
               invalid_count=1, variables="{}", owner_notified=False, reminder_sent=False,
               started_at=naive, last_activity=naive, expires_at=naive + timedelta(hours=24),
               revision=2, company_id="biz_1")
        insert("messages", experience_id="exp_1", conversation_id=1, direction="in",
               user_id="user_1", whop_message_id="msg_processed", text="banana",
               status="received", recipient="member", attempts=0, created_at=naive)
        insert("interactions", experience_id="exp_1", conversation_id=1, message_id=1,
               funnel_id="onboarding", block="welcome", text="banana", classification="invalid",
               attempt=1, action="reprompt", how="", created_at=naive)
        insert("messages", experience_id="exp_other", direction="in", user_id="user_1",
               whop_message_id="msg_unrouted", text="1", status="unrouted",
               recipient="member", attempts=0, created_at=naive)
        insert("messages", experience_id="exp_1", conversation_id=1, direction="out",
               user_id="user_1", text="Please choose from the provided options above.",
               status="pending", recipient="member", attempts=0, next_attempt_at=naive,
               idempotency_key="v1key000000000000000000000000001", created_at=naive)
    finally:
        store.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_version_1_database_is_upgraded_in_place(db_url_factory, clock, fake, engine):
    url = db_url_factory(engine)
    version_1(url, engine, clock.now())
    with Store(url) as store:
        assert store.upgrade(reminder=23 * 3600) == (1, SCHEMA_VERSION)
        store.check_schema()
        assert len(store.instance_id) == 16
        reply = store.tenant("exp_1").interactions()[0]
        assert (reply.whop_message_id, reply.classification) == ("msg_processed", "invalid")
        conv = store.tenant("exp_1").active("user_1")
        assert conv.remind_at == clock.now() + timedelta(hours=23)  # dated from plugin.yaml
        m = store.models.message
        assert m.select().where(m.whop_message_id == "msg_unrouted").count() == 0

        host = Host(store, {"onboarding": ONBOARDING}, clock=clock)

        def say(text, message_id):
            return host.message(MessageReceived(experience_id="exp_1", user_id="user_1",
                                                message_id=message_id, text=text))

        # What version 1 processed stays processed; what it could not route is free again.
        assert say("banana", "msg_processed").status == "duplicate"
        assert say("1", "msg_unrouted").status == "advanced"
        assert store.tenant("exp_1").active("user_1").block == "email"
        # The version-1 outbox drains, in order, ahead of what version 2 queued.
        dispatcher = Dispatcher(store, whop_client(fake, max_retries=0), clock)
        assert dispatcher.run_once().sent == 3
        texts = [x["content"] for x in fake.sent_messages(fake.channel_for("user_1", "biz_1"))]
        assert texts[0] == "Please choose from the provided options above."
        assert texts[-1] == "What's the best email to send it to?"
        assert store.upgrade() == (SCHEMA_VERSION, SCHEMA_VERSION)  # again: nothing to do


@pytest.mark.parametrize("engine", ENGINES)
def test_a_fresh_database_has_the_current_schema(db_url_factory, engine):
    with Store(db_url_factory(engine)) as store:
        assert store.upgrade() == (0, SCHEMA_VERSION)
        i = store.models.interaction
        assert i.select().count() == 0  # the tables exist, with their current columns
        assert store.upgrade() == (SCHEMA_VERSION, SCHEMA_VERSION)


def test_each_database_gets_its_own_instance_id(db_url_factory):
    ids = set()
    for _ in range(2):
        with Store(db_url_factory("sqlite")) as store:
            store.upgrade()
            ids.add(store.instance_id)
    assert len(ids) == 2
