"""The polling fallback: DMs read from the fake Whop API after a stored cursor."""

from __future__ import annotations

import pytest

from whopfunnel_plugin import MemberJoined, MessageReceived, hookimpl
from whopfunnel_plugin.service.poller import Poller

from ..conftest import whop_client

WELCOME = "Welcome, Ada! What brings you here?\n\n1. Trading & Investing\n2. Just exploring for now"
GUIDE = "Here is the free guide: https://example.com/guide"
ASK_EMAIL = "What's the best email to send it to?"


class Heard:
    """Records every message the `on_message` hook is called with."""

    def __init__(self):
        self.texts = []

    @hookimpl
    def on_message(self, message):
        self.texts.append((message.user_id, message.text))


@pytest.fixture
def pm(make_pm):
    pm = make_pm()
    heard = Heard()
    pm.register(heard, name="heard")
    pm.heard = heard
    try:
        yield pm
    finally:
        pm.unregister(name="heard")


class Ticks:
    """An injectable monotonic clock, in seconds."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def join(pm, user="user_1", exp="exp_1"):
    pm.hook.on_member_join(event=MemberJoined(experience_id=exp, user_id=user, company_id="biz_1",
                                              user_name="Ada"))


def conversation(pm, user="user_1", exp="exp_1"):
    return pm.runtime.store.tenant(exp).latest(user)


def rows(pm, name):
    return list(getattr(pm.runtime.store.models, name).select())


def bot_said(fake, user="user_1"):
    return [m["content"] for m in fake.sent_messages(fake.channel_for(user, "biz_1"))]


def test_member_dms_are_fed_through_on_message(pm, fake):
    join(pm)
    fake.member_says("user_1", "1", company_id="biz_1")
    poller = Poller(pm, bot_user_id=fake.bot_user["id"])
    assert poller.run_once() == 1
    assert pm.heard.texts == [("user_1", "1")]  # not the bot's own welcome
    assert bot_said(fake) == [WELCOME, GUIDE, ASK_EMAIL]
    assert conversation(pm).block == "email"
    inbound = rows(pm, "interaction")[0]  # the member's message is stored once, as its reply
    assert (inbound.text, inbound.classification) == ("1", "valid")
    assert inbound.whop_message_id.startswith("msg_")
    # The bot's replies that are now in the channel are not fed back as member messages.
    assert poller.run_once() == 0
    assert pm.heard.texts == [("user_1", "1")]


def test_system_and_automated_messages_are_not_fed_as_replies(pm, fake):
    join(pm)
    fake.system_message("user_1", "2", company_id="biz_1")  # "2" would end the funnel
    fake.system_message("user_1", "2", message_type="automated", company_id="biz_1")
    fake.member_says("user_1", "1", company_id="biz_1")
    assert Poller(pm, bot_user_id=fake.bot_user["id"]).run_once() == 1
    assert pm.heard.texts == [("user_1", "1")]
    assert conversation(pm).block == "email"


def test_the_cursor_is_stored_and_advances(pm, fake):
    join(pm)
    assert conversation(pm).poll_cursor is None
    fake.member_says("user_1", "1", company_id="biz_1")
    Poller(pm, bot_user_id=fake.bot_user["id"]).run_once()
    first = conversation(pm).poll_cursor
    assert first is not None
    client = whop_client(fake)
    channel = conversation(pm).channel_id
    # it points just past the member's reply: only the bot's answers to it come after
    assert [m["content"] for m in client.list_messages(channel, after=first).data] == [
        GUIDE, ASK_EMAIL]

    fake.member_says("user_1", "ada@example.com", company_id="biz_1")
    # A new poller (a restarted process) starts from the stored cursor, not from the top.
    assert Poller(pm, bot_user_id=fake.bot_user["id"]).run_once() == 1
    assert pm.heard.texts == [("user_1", "1"), ("user_1", "ada@example.com")]
    second = conversation(pm).poll_cursor
    assert second != first
    assert [m["content"] for m in client.list_messages(channel, after=first).data][:3] == [
        GUIDE, ASK_EMAIL, "ada@example.com"]
    assert [m["user"]["id"] for m in client.list_messages(channel, after=second).data] == [
        "user_bot"]  # the offer, sent after the poll
    assert conversation(pm).block == "offer"


def test_a_dm_seen_by_webhook_and_poller_is_processed_once(pm, fake):
    join(pm)
    envelope = fake.member_says("user_1", "1", company_id="biz_1")
    message = envelope["data"]["message"]
    channel = envelope["data"]["channel"]["id"]
    pm.hook.on_message(message=MessageReceived(experience_id="exp_1", user_id="user_1",
                                               message_id=message["id"], text=message["content"],
                                               channel_id=channel))
    Poller(pm, bot_user_id=fake.bot_user["id"]).run_once()
    assert bot_said(fake) == [WELCOME, GUIDE, ASK_EMAIL]
    interactions = rows(pm, "interaction")
    assert [(i.block, i.classification) for i in interactions] == [("welcome", "valid")]
    assert len({i.whop_message_id for i in interactions}) == 1
    assert conversation(pm).block == "email"


def test_history_from_before_the_conversation_is_skipped(pm, fake, clock):
    fake.member_says("user_1", "2", company_id="biz_1")  # would end the funnel if read as a reply
    clock.advance(minutes=5)
    join(pm)
    Poller(pm, bot_user_id=fake.bot_user["id"]).run_once()
    assert pm.heard.texts == []
    assert (conversation(pm).status, conversation(pm).block) == ("active", "welcome")
    assert bot_said(fake) == [WELCOME]

    fake.member_says("user_1", "1", company_id="biz_1")
    Poller(pm, bot_user_id=fake.bot_user["id"]).run_once()
    assert pm.heard.texts == [("user_1", "1")]
    assert conversation(pm).block == "email"


def test_the_request_budget_caps_api_calls_per_run(pm, fake):
    for i in range(5):
        join(pm, f"user_{i}")
    ticks = Ticks()
    poller = Poller(pm, bot_user_id=fake.bot_user["id"], requests_per_minute=2, monotonic=ticks)

    def polls():
        return fake.requests.count(("GET", "/messages"))

    before = polls()
    poller.run_once()
    assert polls() - before == 2
    poller.run_once()  # no time has passed: no budget left
    assert polls() - before == 2
    ticks.now += 30  # half a minute earns one request
    poller.run_once()
    assert polls() - before == 3
    ticks.now += 3600  # an idle hour does not bank more than a minute's worth
    poller.run_once()
    assert polls() - before == 5


def test_every_conversation_gets_its_turn_across_runs(pm, fake):
    users = [f"user_{i}" for i in range(5)]
    for user in users:
        join(pm, user)
        fake.member_says(user, "1", company_id="biz_1")
    ticks = Ticks()
    poller = Poller(pm, bot_user_id=fake.bot_user["id"], requests_per_minute=2, monotonic=ticks)
    advanced = []
    for _ in range(3):
        poller.run_once()
        advanced.append(sorted(u for u in users if conversation(pm, u).block == "email"))
        ticks.now += 60
    assert [len(a) for a in advanced] == [2, 4, 5]
    assert advanced[-1] == users
    assert sorted(pm.heard.texts) == [(u, "1") for u in users]  # each once


def test_conversations_without_a_channel_or_not_active_are_not_polled(make_pm, fake):
    pm = make_pm()
    fake.fail_next(3, status=503)  # the welcome waits in the outbox: no channel yet
    join(pm, "user_1")
    join(pm, "user_2")
    pm.hook.on_message(message=MessageReceived(experience_id="exp_1", user_id="user_2",
                                               message_id="m_end", text="2"))  # ends it
    assert conversation(pm, "user_2").status == "completed"
    before = fake.requests.count(("GET", "/messages"))
    assert Poller(pm, bot_user_id=fake.bot_user["id"]).run_once() == 0
    assert fake.requests.count(("GET", "/messages")) == before


def test_one_dm_in_a_shared_channel_advances_one_conversation(make_pm, fake):
    # Whop returns the existing DM channel with a member, so a member with conversations in
    # two experiences of the same company has one channel bound to both.
    pm = make_pm()
    join(pm, "user_1", "exp_a")
    join(pm, "user_1", "exp_b")
    assert conversation(pm, "user_1", "exp_a").channel_id == conversation(pm, "user_1", "exp_b").channel_id
    fake.member_says("user_1", "1", company_id="biz_1")
    Poller(pm, bot_user_id=fake.bot_user["id"]).run_once()
    blocks = sorted(conversation(pm, "user_1", exp).block for exp in ("exp_a", "exp_b"))
    assert blocks == ["email", "welcome"]  # the webhook path routes it to one of them
    assert len(rows(pm, "interaction")) == 1


def test_a_dm_taken_by_one_tenant_is_not_processed_again_by_another(make_pm, fake):
    pm = make_pm()
    join(pm, "user_1", "exp_a")
    join(pm, "user_1", "exp_b")
    envelope = fake.member_says("user_1", "2", company_id="biz_1")
    message_id = envelope["data"]["message"]["id"]
    # the webhook path routed it to exp_b, which it ends ("Just exploring" -> goodbye)
    out = pm.hook.on_message(message=MessageReceived(experience_id="exp_b", user_id="user_1",
                                                     message_id=message_id, text="2"))
    assert [o.status for o in out if o is not None] == ["ended"]
    # the poller now sees the same message; route_dm would pick exp_a, but it is a duplicate
    Poller(pm, bot_user_id=fake.bot_user["id"]).run_once()
    assert conversation(pm, "user_1", "exp_a").block == "welcome"
    assert conversation(pm, "user_1", "exp_a").status == "active"
    assert [(r.experience_id, r.text) for r in rows(pm, "interaction")] == [("exp_b", "2")]
