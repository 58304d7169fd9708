"""Embedding as a bot host would (SPEC §7): several managers per process, from several
threads, closing, and plugin code that never runs under a conversation's lock."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest

from whopfunnel_plugin import (
    ManagerClosed,
    MemberJoined,
    MessageReceived,
    hookimpl,
    make_plugin_manager,
)
from whopfunnel_plugin.config import Config, Route
from whopfunnel_plugin.storage import Store
from whopfunnel_plugin.whop.fake import FakeWhop

from .conftest import FUNNELS

ENV = {"WHOP_API_KEY": "fake_whop_key"}


def manager(url, fake, clock=None, **kwargs):
    store = Store(url)
    store.upgrade()
    store.close()
    config = Config(database=url, funnels=(str(FUNNELS / "onboarding.yaml"),),
                    routes=(Route(funnel="onboarding", default=True, experience="exp_1"),),
                    base_url="http://whop.test/api/v1")
    return make_plugin_manager(config, environ=ENV, clock=clock, entrypoints=False,
                               transport=httpx.WSGITransport(app=fake), **kwargs)


def join(pm, user, exp="exp_1"):
    return pm.hook.on_member_join(event=MemberJoined(experience_id=exp, user_id=user,
                                                     company_id="biz_1"))[0]


def say(pm, user, text, exp="exp_1"):
    return pm.hook.on_message(message=MessageReceived(
        experience_id=exp, user_id=user, message_id=f"m_{uuid.uuid4().hex}", text=text))[0]


def users_in(url):
    with Store(url) as store:
        return sorted(c.user_id for c in store.tenant("exp_1").conversations())


def run_threads(targets):
    errors = []

    def guarded(target):
        try:
            target()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert not any(t.is_alive() for t in threads)


@pytest.mark.server_db
def test_two_managers_on_two_databases_from_several_threads(db_url_factory):
    fake = FakeWhop(owners={"biz_1": "user_owner"})
    lite, pg = db_url_factory("sqlite"), db_url_factory("postgres")
    with manager(lite, fake) as one, manager(pg, fake) as two:

        def member(pm, prefix, i):
            def play():
                user = f"{prefix}{i}"
                assert join(pm, user).status == "started"
                assert say(pm, user, "1").status == "advanced"
                assert say(pm, user, "ada@example.com").status == "advanced"
            return play

        run_threads([member(one, "lite_", i) for i in range(6)]
                    + [member(two, "pg_", i) for i in range(6)])
        assert one.runtime.store.tenant("exp_1").active("lite_0").block == "offer"
        assert two.runtime.store.tenant("exp_1").active("pg_0").block == "offer"
    assert users_in(lite) == sorted(f"lite_{i}" for i in range(6))
    assert users_in(pg) == sorted(f"pg_{i}" for i in range(6))


def test_a_closed_manager_refuses_every_call_and_writes_nothing(db_url_factory):
    fake = FakeWhop(owners={"biz_1": "user_owner"})
    first_url, second_url = db_url_factory("sqlite"), db_url_factory("sqlite")
    first = manager(first_url, fake)
    join(first, "ada")
    first.close()
    with manager(second_url, fake) as second:
        join(second, "bob")
        for call in (lambda: join(first, "eve"), lambda: say(first, "ada", "1"),
                     lambda: first.hook.on_timeout(conversation=None)):
            with pytest.raises(ManagerClosed, match="^this plugin manager is closed$"):
                call()
        with pytest.raises(ManagerClosed):
            first.register(object(), name="late")
        assert say(second, "bob", "1").status == "advanced"
    assert users_in(first_url) == ["ada"]
    assert users_in(second_url) == ["bob"]
    with Store(first_url) as store:
        assert store.tenant("exp_1").active("ada").block == "welcome"  # never advanced
    first.close()  # closing twice is fine


def test_with_closes_the_manager(db_url_factory):
    fake = FakeWhop(owners={"biz_1": "user_owner"})
    with manager(db_url_factory("sqlite"), fake) as pm:
        join(pm, "ada")
    assert pm.closed
    with pytest.raises(ManagerClosed):
        join(pm, "ada")


class Gate:
    """An on_invalid_response that blocks until it is let go, counting its calls."""

    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    @hookimpl
    def on_invalid_response(self, conversation, reply, attempt, step):
        self.calls += 1
        self.entered.set()
        assert self.release.wait(30), "never let go"
        return None


def test_plugin_code_never_runs_under_the_sqlite_write_lock(db_url_factory):
    # A plugin that calls out to a slow CRM in on_invalid_response must not hold up anyone
    # else: while it is stuck, another member's valid reply is committed and answered.
    fake = FakeWhop(owners={"biz_1": "user_owner"})
    with manager(db_url_factory("sqlite"), fake) as pm:
        gate = Gate()
        pm.register(gate, name="gate")
        join(pm, "slow")
        join(pm, "fast")
        stuck = threading.Thread(target=lambda: say(pm, "slow", "banana"))
        stuck.start()
        assert gate.entered.wait(30)
        other = {}
        worker = threading.Thread(target=lambda: other.update(out=say(pm, "fast", "1")))
        worker.start()
        worker.join(20)
        finished_while_stuck = not worker.is_alive() and not gate.release.is_set()
        gate.release.set()
        stuck.join(30)
        worker.join(30)
        assert finished_while_stuck
        assert other["out"].status == "advanced"
        assert pm.runtime.store.tenant("exp_1").active("slow").invalid_count == 1
        assert gate.calls == 1  # once per reply: nothing changed the conversation meanwhile


def test_on_invalid_response_runs_again_only_when_the_conversation_changed(db_url_factory):
    fake = FakeWhop(owners={"biz_1": "user_owner"})
    with manager(db_url_factory("sqlite"), fake) as pm:
        gate = Gate()
        pm.register(gate, name="gate")
        join(pm, "ada")
        stuck = threading.Thread(target=lambda: say(pm, "ada", "banana"))
        stuck.start()
        assert gate.entered.wait(30)
        # While the hook decides, the member's next reply moves the conversation on.
        pm.unregister(name="gate")
        assert say(pm, "ada", "1").status == "advanced"
        pm.register(gate, name="gate")
        gate.release.set()
        stuck.join(30)
        assert gate.calls == 2  # decided again on the conversation as it now is
        conv = pm.runtime.store.tenant("exp_1").active("ada")
        assert (conv.block, conv.invalid_count) == ("email", 1)
