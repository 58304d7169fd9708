"""The outbox dispatcher against the fake Whop API: order, hold-back, channels, retries."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import httpx
import pytest

from whopfunnel_plugin import MemberJoined, MessageReceived, hookimpl
from whopfunnel_plugin.service.delivery import MAX_BACKOFF, Dispatcher
from whopfunnel_plugin.service.leases import LEASE
from whopfunnel_plugin.storage import Store
from whopfunnel_plugin.whop.client import WhopClient

from ..conftest import whop_client

WELCOME = "Welcome, Ada! What brings you here?\n\n1. Trading & Investing\n2. Just exploring for now"
GUIDE = "Here is the free guide: https://example.com/guide"
ASK_EMAIL = "What's the best email to send it to?"


class Tap(httpx.BaseTransport):
    """The fake Whop API behind a switch: records every send and refuses the chosen ones."""

    def __init__(self, fake):
        self.inner = httpx.WSGITransport(app=fake)
        self.sends: list[tuple[str, str, str]] = []  # (channel, content, Idempotency-Key)
        self.refuse = lambda channel, content: False

    def handle_request(self, request):
        if request.method == "POST" and request.url.path.endswith("/messages"):
            body = json.loads(request.content)
            self.sends.append((body["channel_id"], body["content"],
                               request.headers.get("idempotency-key")))
            if self.refuse(body["channel_id"], body["content"]):
                return httpx.Response(503, json={"error": {"message": "down for maintenance"}})
        return self.inner.handle_request(request)


def tapped_client(fake, tap):
    return WhopClient(fake.api_key, base_url="http://whop.test/api/v1", transport=tap,
                      sleep=lambda s: None, max_retries=0)


@pytest.fixture
def quiet_pm(make_pm):
    """A manager whose hook calls only fill the outbox: the tests drive the dispatcher."""

    def make(**kwargs):
        return make_pm(delivery="dispatcher", **kwargs)

    return make


def join(pm, user="user_1", exp="exp_1"):
    pm.hook.on_member_join(event=MemberJoined(experience_id=exp, user_id=user, company_id="biz_1",
                                              user_name="Ada"))


def say(pm, text, user="user_1", exp="exp_1", channel_id=None):
    pm.hook.on_message(message=MessageReceived(experience_id=exp, user_id=user, text=text,
                                               message_id=f"m_{uuid.uuid4().hex}",
                                               channel_id=channel_id))


def dms(fake, user="user_1"):
    return [m["content"] for m in fake.sent_messages(fake.channel_for(user, "biz_1"))]


def outbox(pm, user="user_1"):
    """The undelivered messages of a member's conversations: (text, attempts, status)."""
    models = pm.runtime.store.models
    m, c = models.message, models.conversation
    rows = (m.select().join(c).where((c.user_id == user) & (m.direction == "out")
                                     & (m.status != "sent")).order_by(m.id))
    return [(r.text, r.attempts, r.status) for r in rows]


def conversation(pm, user="user_1", exp="exp_1"):
    return pm.runtime.store.tenant(exp).latest(user)


def out_rows(pm):
    m = pm.runtime.store.models.message
    return list(m.select().where(m.direction == "out").order_by(m.id))


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.server_db),
                                    pytest.param("mysql", marks=pytest.mark.server_db)])
def test_messages_of_a_conversation_are_delivered_in_order(quiet_pm, fake, clock, engine):
    pm = quiet_pm(engine=engine)
    join(pm, "user_1")
    join(pm, "user_2")
    say(pm, "1", "user_1")
    say(pm, "1", "user_2")  # the outbox now interleaves the two conversations
    assert dms(fake) == []
    result = Dispatcher(pm.runtime.store, whop_client(fake, max_retries=0), clock).run_once()
    assert (result.sent, result.failed) == (6, 0)
    assert dms(fake, "user_1") == [WELCOME, GUIDE, ASK_EMAIL]
    assert dms(fake, "user_2") == [WELCOME, GUIDE, ASK_EMAIL]
    assert outbox(pm, "user_1") == outbox(pm, "user_2") == []
    sent = out_rows(pm)
    whop_ids = {m["id"] for m in fake.sent_messages()}
    assert {row.whop_message_id for row in sent} == whop_ids
    assert len(whop_ids) == 6


def test_a_failure_holds_back_its_conversation_but_not_the_others(quiet_pm, fake, clock):
    pm = quiet_pm()
    join(pm, "user_1")
    join(pm, "user_2")
    say(pm, "1", "user_1")
    say(pm, "1", "user_2")
    tap = Tap(fake)
    ada = fake.channel_for("user_1", "biz_1")
    tap.refuse = lambda channel, content: channel == ada and content == GUIDE
    dispatcher = Dispatcher(pm.runtime.store, tapped_client(fake, tap), clock)

    result = dispatcher.run_once()
    assert (result.sent, result.failed) == (4, 1)
    assert dms(fake, "user_1") == [WELCOME]
    assert dms(fake, "user_2") == [WELCOME, GUIDE, ASK_EMAIL]
    assert outbox(pm, "user_1") == [(GUIDE, 1, "pending"), (ASK_EMAIL, 0, "pending")]
    assert (ada, ASK_EMAIL) not in [(ch, text) for ch, text, _ in tap.sends]  # never even tried

    # The question behind the failed message is due, but still waits for it.
    clock.advance(seconds=1)
    assert dispatcher.run_once().sent == 0
    assert dms(fake, "user_1") == [WELCOME]

    tap.refuse = lambda channel, content: False
    clock.advance(minutes=5)
    assert dispatcher.run_once().sent == 2
    assert dms(fake, "user_1") == [WELCOME, GUIDE, ASK_EMAIL]
    assert outbox(pm, "user_1") == []


def test_the_dm_channel_is_opened_once_and_remembered(quiet_pm, fake, clock):
    pm = quiet_pm()
    dispatcher = Dispatcher(pm.runtime.store, whop_client(fake, max_retries=0), clock)

    def opened():
        return fake.requests.count(("POST", "/dm_channels"))

    join(pm)
    assert conversation(pm).channel_id is None
    dispatcher.run_once()
    assert opened() == 1
    assert conversation(pm).channel_id == fake.channel_for("user_1", "biz_1")
    say(pm, "1")
    dispatcher.run_once()
    assert opened() == 1
    assert dms(fake) == [WELCOME, GUIDE, ASK_EMAIL]

    # A channel already learnt from the member's own DM is used as it is.
    join(pm, "user_2")
    channel = fake.channel_for("user_2", "biz_1")
    say(pm, "1", "user_2", channel_id=channel)
    dispatcher.run_once()
    assert opened() == 1
    assert dms(fake, "user_2") == [WELCOME, GUIDE, ASK_EMAIL]
    assert conversation(pm, "user_2").channel_id == channel


class PowerCut:
    """A store whose process dies right after Whop accepted the message, before marking it."""

    def __init__(self, store):
        self.store = store
        self.outbox = self
        self.effects = store.effects

    def __getattr__(self, name):
        return getattr(self.store.outbox, name)

    def mark_sent(self, *args, **kwargs):
        raise RuntimeError("power cut")


def test_a_resend_after_a_crash_reuses_the_idempotency_key(quiet_pm, fake, clock):
    pm = quiet_pm()
    join(pm)
    key = out_rows(pm)[0].idempotency_key
    tap = Tap(fake)
    with pytest.raises(RuntimeError, match="power cut"):
        dead = Dispatcher(PowerCut(pm.runtime.store), tapped_client(fake, tap), clock)
        dead.run_once()
    assert dms(fake) == [WELCOME]
    assert outbox(pm) == [(WELCOME, 0, "pending")]  # claimed, never marked sent

    restarted = Dispatcher(pm.runtime.store, tapped_client(fake, tap), clock)
    assert restarted.run_once().sent == 0  # the dead process's claim still holds
    clock.advance((LEASE + timedelta(seconds=1)).total_seconds())
    assert restarted.run_once().sent == 1
    assert [k for _, _, k in tap.sends] == [key, key]
    assert dms(fake) == [WELCOME]  # Whop deduplicated the resend: one message
    row = out_rows(pm)[0]
    assert (row.status, row.whop_message_id) == ("sent", fake.sent_messages()[0]["id"])


def test_backoff_grows_and_is_capped(quiet_pm, fake, clock):
    pm = quiet_pm()
    join(pm)
    tap = Tap(fake)
    tap.refuse = lambda channel, content: True
    dispatcher = Dispatcher(pm.runtime.store, tapped_client(fake, tap), clock, alert_after=100)
    delays = []
    for _ in range(14):
        assert dispatcher.run_once().failed == 1
        row = out_rows(pm)[0]
        delays.append(row.next_attempt_at - clock.now())
        # Nothing is retried before its time...
        clock.set(row.next_attempt_at - timedelta(seconds=1))
        assert dispatcher.run_once().failed == 0
        clock.set(row.next_attempt_at)
    assert delays[0] > timedelta(0)
    capped = delays.index(MAX_BACKOFF)
    assert capped >= 3
    assert all(a < b for a, b in zip(delays[:capped], delays[1:capped + 1]))
    assert delays[capped:] == [MAX_BACKOFF] * (len(delays) - capped)
    assert len(tap.sends) == 14
    assert outbox(pm) == [(WELCOME, 14, "pending")]  # never dropped


def test_after_alert_after_failures_a_message_is_failed_and_still_retried(quiet_pm, fake, clock):
    pm = quiet_pm()
    join(pm)
    say(pm, "1")
    tap = Tap(fake)
    tap.refuse = lambda channel, content: True
    alerts = []
    dispatcher = Dispatcher(pm.runtime.store, tapped_client(fake, tap), clock, alert_after=3,
                            on_failed=lambda **kw: alerts.append((kw["text"], kw["attempts"])))
    statuses = []
    for _ in range(5):
        dispatcher.run_once()
        statuses.append(outbox(pm)[0][2])
        clock.advance(hours=1)
    assert statuses == ["pending", "pending", "failed", "failed", "failed"]
    assert alerts == [(WELCOME, 3)]
    assert len(tap.sends) == 5
    assert outbox(pm)[0] == (WELCOME, 5, "failed")

    tap.refuse = lambda channel, content: False
    assert dispatcher.run_once().sent == 3
    assert dms(fake) == [WELCOME, GUIDE, ASK_EMAIL]
    assert outbox(pm) == []
    assert alerts == [(WELCOME, 3)]


def test_hook_on_delivery_failed_fires_once_from_the_runtime_dispatcher(quiet_pm, fake, clock):
    pm = quiet_pm()
    seen = []

    class Alarm:
        @hookimpl
        def on_delivery_failed(self, conversation, text, error, attempts):
            seen.append((conversation.user_id, text, attempts, error))

    pm.register(Alarm(), name="alarm")
    try:
        join(pm)
        fake.fail_next(1000, status=503)
        for _ in range(7):
            assert pm.runtime.dispatcher.run_once().failed == 1
            clock.advance(hours=1)
        assert [(user, text, n) for user, text, n, _ in seen] == [("user_1", WELCOME, 5)]
        assert "503" in seen[0][3]
        fake.clear_faults()
        assert pm.runtime.dispatcher.run_once().sent == 1
        assert dms(fake) == [WELCOME]
    finally:
        pm.unregister(name="alarm")


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.server_db),
                                    pytest.param("mysql", marks=pytest.mark.server_db)])
def test_a_restarted_dispatcher_delivers_what_the_previous_one_left(quiet_pm, fake, clock, engine):
    pm = quiet_pm(engine=engine)
    join(pm, "user_1")
    join(pm, "user_2")
    say(pm, "1", "user_1")
    say(pm, "1", "user_2")
    tap = Tap(fake)
    ada = fake.channel_for("user_1", "biz_1")
    tap.refuse = lambda channel, content: channel == ada and content != WELCOME
    assert Dispatcher(pm.runtime.store, tapped_client(fake, tap), clock).run_once().sent == 4
    assert dms(fake, "user_1") == [WELCOME]

    # The process restarts: a new connection, a new client, a new dispatcher.
    url = pm.runtime.store.url
    pm.close()
    store = Store(url)
    try:
        store.check_schema()
        fresh = Dispatcher(store, whop_client(fake, max_retries=0), clock)
        clock.advance(minutes=10)
        assert fresh.run_once().sent == 2
        assert fresh.run_once().sent == 0
        assert dms(fake, "user_1") == [WELCOME, GUIDE, ASK_EMAIL]
        assert dms(fake, "user_2") == [WELCOME, GUIDE, ASK_EMAIL]
        assert outbox(pm, "user_1") == outbox(pm, "user_2") == []
    finally:
        store.close()


def test_a_stuck_conversation_does_not_starve_the_others(quiet_pm, fake, clock):
    pm = quiet_pm()
    join(pm, "user_1")
    say(pm, "1", "user_1")  # three messages, all behind a head Whop keeps refusing
    tap = Tap(fake)
    ada = fake.channel_for("user_1", "biz_1")
    tap.refuse = lambda channel, content: channel == ada
    dispatcher = Dispatcher(pm.runtime.store, tapped_client(fake, tap), clock, batch_size=2)
    dispatcher.run_once()
    join(pm, "user_2")
    for _ in range(3):
        clock.advance(seconds=1)
        dispatcher.run_once()
    assert dms(fake, "user_2") == [WELCOME]


def test_a_wait_whop_asks_for_is_scheduled_never_slept_under_a_claim(quiet_pm, fake, clock):
    pm = quiet_pm()
    join(pm)
    slept = []
    client = WhopClient(fake.api_key, base_url="http://whop.test/api/v1",
                        transport=httpx.WSGITransport(app=fake), sleep=slept.append,
                        monotonic=lambda: clock.now().timestamp())
    fake.fail_next(1, status=429, headers={"Retry-After": "30"})
    result = Dispatcher(pm.runtime.store, client, clock).run_once()
    assert (result.sent, result.failed) == (0, 1)
    assert slept == []  # not slept while the message was claimed
    row = out_rows(pm)[0]
    assert (row.status, row.claimed_by, row.next_attempt_at) == (
        "pending", None, clock.now() + timedelta(seconds=30))
    assert Dispatcher(pm.runtime.store, client, clock).run_once().sent == 0  # not before
    clock.advance(seconds=30)
    assert Dispatcher(pm.runtime.store, client, clock).run_once().sent == 1
    assert dms(fake) == [WELCOME]
