"""Issue 10's defects that need no process to die: claims, --now, idempotency keys,
input that cannot be stored, over-long ids (see test_faults.py for real faults)."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest

from whopfunnel_plugin import MemberJoined, MessageReceived, hookimpl
from whopfunnel_plugin.events import MAX_TEXT
from whopfunnel_plugin.service.server import WebhookApp
from whopfunnel_plugin.whop.fake import FakeWhop

from ..conftest import whop_client

SECRET = "ws_reliability_secret"
ROUTES = ["{product: prod_1, experience: exp_1, funnel: onboarding}"]
ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.server_db),
           pytest.param("mysql", marks=pytest.mark.server_db)]


def join(pm, user="user_1"):
    return pm.hook.on_member_join(event=MemberJoined(experience_id="exp_1", user_id=user,
                                                     company_id="biz_1", user_name="Ada"))[0]


def say(pm, text, msg_id, user="user_1"):
    return pm.hook.on_message(message=MessageReceived(experience_id="exp_1", user_id=user,
                                                      message_id=msg_id, text=text))[0]


def post(client, clock, envelope):
    body = json.dumps(envelope).encode()  # ensure_ascii: "\ud800" travels as valid JSON
    headers = FakeWhop.sign(body, SECRET, envelope["id"], int(clock.now().timestamp()))
    return client.post("/webhooks/whop", content=body, headers=headers)


@pytest.fixture
def webhook(make_pm, fake):
    def make(engine="sqlite"):
        pm = make_pm(routes=ROUTES, engine=engine)
        app = WebhookApp(pm, secret=SECRET, bot_user_id=fake.bot_user["id"])
        return pm, httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://wf.test")
    return make


def test_an_owed_hook_call_is_claimed_by_one_worker_only(make_pm, clock):
    pm = make_pm(delivery="dispatcher")  # hook calls are left due, as a server leaves them
    join(pm)
    say(pm, "2", "m1")  # "Just exploring" ends the conversation: on_conversation_end is owed
    effects = pm.runtime.store.effects
    now = clock.now()
    first = effects.claim(now, now + timedelta(seconds=15))
    assert [o.kind for o in first] == ["conversation_end"]
    # Another worker, the same moment: the live lease is not taken over, by id or as due.
    assert effects.claim(now, now + timedelta(seconds=15)) == []
    assert effects.claim(now, now + timedelta(seconds=15), ids=[first[0].id]) == []
    # Once the lease has run out (its holder died), it can be taken over.
    later = now + timedelta(seconds=16)
    assert [o.id for o in effects.claim(later, later + timedelta(seconds=15))] == [first[0].id]


class Ends:
    def __init__(self):
        self.seen = []

    @hookimpl
    def on_conversation_end(self, conversation):
        self.seen.append(conversation.id)


def test_hook_calls_fire_once_however_many_workers_fire(make_pm, clock):
    pm = make_pm(delivery="dispatcher")
    ends = Ends()
    pm.register(ends, name="ends")
    try:
        for i in range(5):
            join(pm, f"u{i}")
            say(pm, "2", f"m{i}", user=f"u{i}")
        host = pm.runtime.host
        fired = [host.fire_due() for _ in range(3)]  # three workers' job threads in turn
        assert fired == [5, 0, 0]
        assert sorted(ends.seen) == sorted(set(ends.seen)) and len(ends.seen) == 5
    finally:
        pm.unregister(name="ends")


def test_sweep_now_decides_what_is_swept_not_when_messages_are_sent(make_pm, fake, clock):
    pm = make_pm("timeouts: {reminder: 23h}\n", delivery="dispatcher")  # the funnel's: 24h
    join(pm)
    dispatcher = pm.runtime.dispatcher
    dispatcher.run_once()
    future = clock.now() + timedelta(hours=23, minutes=30)
    assert pm.runtime.host.sweep(future).reminded == 1  # `whopfunnel sweep --now +23h30m`
    say(pm, "1", "m1")  # the member answers now, in real time
    assert dispatcher.run_once().sent == 4  # the reminder, then the answers: none waits
    channel = fake.channel_for("user_1", "biz_1")
    texts = [m["content"] for m in fake.sent_messages(channel)]
    assert texts[1].startswith("Are you still there?")
    assert texts[-1] == "What's the best email to send it to?"


def test_owner_message_keys_are_unique_across_databases(make_pm, fake, clock):
    keys = []
    for _ in range(2):  # staging and production, one Whop API key, both at conversation 1
        pm = make_pm()
        join(pm)
        for i, text in enumerate(("banana", "cherry")):
            say(pm, text, f"m{i}")
        owner = [m for m in pm.runtime.store.tenant("exp_1").messages(direction="out")
                 if m.recipient == "owner"]
        assert len(owner) == 1 and owner[0].conversation_id == 1
        keys.append(owner[0].idempotency_key)
    assert keys[0] != keys[1]
    owner_channel = fake.channel_for("user_owner", "biz_1")
    assert len(fake.sent_messages(owner_channel)) == 2  # both owners' DMs got through


@pytest.mark.parametrize("engine", ENGINES)
def test_text_that_cannot_be_stored_is_made_storable(webhook, fake, clock, engine):
    pm, client = webhook(engine)
    post(client, clock, fake.membership_activated("user_1", "prod_1", "biz_1"))
    lone = fake.member_says("user_1", "a\ud800b", company_id="biz_1")
    answer = post(client, clock, lone)
    assert (answer.status_code, answer.json()) == (200, {"status": "advanced"})
    long = fake.member_says("user_1", "x" * 70_000, company_id="biz_1")
    answer = post(client, clock, long)
    assert (answer.status_code, answer.json()) == (200, {"status": "advanced"})
    nul = fake.member_says("user_1", "c\x00d", company_id="biz_1")  # PostgreSQL refuses NUL
    answer = post(client, clock, nul)  # the third invalid reply: the ladder abandons
    assert (answer.status_code, answer.json()) == (200, {"status": "ended"})
    texts = [r.text for r in pm.runtime.store.tenant("exp_1").interactions()]
    assert texts == ["a\ufffdb", "x" * MAX_TEXT, "c\ufffdd"]
    ids = [r.whop_message_id for r in pm.runtime.store.tenant("exp_1").interactions()]
    assert ids == [e["data"]["message"]["id"] for e in (lone, long, nul)]


def test_an_overlong_id_is_refused_with_400_not_500(webhook, fake, clock):
    pm, client = webhook()
    envelope = fake.membership_activated("u" * 200, "prod_1", "biz_1")
    answer = post(client, clock, envelope)
    assert (answer.status_code, answer.json()) == (
        400, {"error": "user_id is longer than 128 characters"})
    with pytest.raises(ValueError, match="MemberJoined.user_id is longer than 128"):
        join(pm, "u" * 200)


def test_an_overlong_name_is_cut_not_refused(webhook, fake, clock):
    pm, client = webhook("sqlite")
    answer = post(client, clock, fake.membership_activated("user_1", "prod_1", "biz_1",
                                                           shape="nested", name="N" * 1000))
    assert answer.json() == {"status": "started"}
    assert pm.runtime.store.tenant("exp_1").active("user_1").user_name == "N" * 255


def test_a_dispatcher_on_another_database_never_sends_this_ones_messages(make_pm, fake, clock):
    one, two = make_pm(delivery="dispatcher"), make_pm(delivery="dispatcher")
    join(one, "ada")
    join(two, "bob")
    other = one.runtime.dispatcher.__class__(two.runtime.store, whop_client(fake), clock)
    assert other.run_once().sent == 1  # bob's welcome, from two's database only
    assert fake.sent_messages(fake.channel_for("ada", "biz_1")) == []
