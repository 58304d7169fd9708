"""Durable conversations on every engine: exactly-once replies, atomicity, sweep, tenants."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from whopfunnel_plugin.errors import ConversationNotFound, SchemaOutOfDate
from whopfunnel_plugin.events import MemberJoined, MessageReceived
from whopfunnel_plugin.funnel.model import load_funnel
from whopfunnel_plugin.service.host import Callbacks, Host
from whopfunnel_plugin.storage import SCHEMA_VERSION, Store

from ..conftest import FUNNELS

ONBOARDING = load_funnel(FUNNELS / "onboarding.yaml")


class Recorder(Callbacks):
    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()

    def on_timeout(self, conversation):
        with self.lock:
            self.calls.append(("timeout", conversation.id))

    def on_conversation_end(self, conversation):
        with self.lock:
            self.calls.append(("end", conversation.id, conversation.end_reason))

    def on_owner_notify(self, conversation, reason, block, last_replies):
        with self.lock:
            self.calls.append(("owner", conversation.id, reason, block, tuple(last_replies)))


@pytest.fixture
def calls():
    return Recorder()


@pytest.fixture
def host(store, clock, calls):
    return Host(store, {"onboarding": ONBOARDING}, clock=clock, callbacks=calls)


def join(host, user="user_1", exp="exp_1", **kw):
    return host.join(MemberJoined(experience_id=exp, user_id=user, **kw))


def say(host, text, msg_id, user="user_1", exp="exp_1"):
    return host.message(MessageReceived(experience_id=exp, user_id=user, message_id=msg_id,
                                        text=text))


def outbox(store, exp="exp_1"):
    return [m.text for m in store.tenant(exp).pending_outbound()]


def test_join_starts_a_conversation_and_queues_the_welcome(host, store):
    outcome = join(host, user_name="Ada")
    assert outcome.status == "started"
    conv = outcome.conversation
    assert (conv.block, conv.status, conv.funnel_id) == ("welcome", "active", "onboarding")
    assert outbox(store) == ["Welcome, Ada! What brings you here?\n\n1. Trading & Investing\n"
                             "2. Just exploring for now"]
    row = store.tenant("exp_1").pending_outbound()[0]
    assert len(row.idempotency_key) == 32


def test_a_redelivered_join_keeps_the_conversation(host, store):
    first = join(host)
    again = join(host)
    assert again.status == "kept"
    assert again.conversation.id == first.conversation.id
    assert len(outbox(store)) == 1


def test_on_rejoin_restart(store, clock, calls):
    funnel = load_funnel(FUNNELS / "onboarding.yaml")
    from dataclasses import replace
    restart = replace(funnel, on_rejoin="restart")
    host = Host(store, {"onboarding": restart}, clock=clock, callbacks=calls)
    first = join(host)
    second = join(host)
    assert second.status == "restarted"
    assert second.conversation.id != first.conversation.id
    old = store.tenant("exp_1").conversation(first.conversation.id)
    assert (old.status, old.end_reason) == ("abandoned", "manual")
    assert ("end", first.conversation.id, "manual") in calls.calls


def test_a_whole_funnel_is_stored_reply_by_reply(host, store, calls):
    join(host)
    say(host, "trading", "m1")
    say(host, "ada@example.com", "m2")
    out = say(host, "yes", "m3")
    assert out.status == "ended"
    conv = store.tenant("exp_1").conversation(out.conversation.id)
    assert (conv.status, conv.end_reason, conv.active_user) == ("handed_off", "handoff", None)
    rows = list(store.tenant("exp_1").interactions(conv.id))
    assert [(r.block, r.classification, r.option_index) for r in rows] == [
        ("welcome", "valid", 0), ("email", "valid", None), ("offer", "valid", 0)]
    assert outbox(store)[-1] == "Great, the team will reach out here shortly."
    owner = [c for c in calls.calls if c[0] == "owner"]
    assert owner == [("owner", conv.id, "handoff", "handoff",
                      ("trading", "ada@example.com", "yes"))]
    assert ("end", conv.id, "handoff") in calls.calls


def test_a_duplicate_message_id_is_processed_once(host, store):
    join(host)
    assert say(host, "nonsense", "m1").status == "advanced"
    assert say(host, "nonsense", "m1").status == "duplicate"
    conv = store.tenant("exp_1").active("user_1")
    assert conv.invalid_count == 1
    assert len(list(store.tenant("exp_1").interactions())) == 1


def counts(store):
    m = store.models
    return m.message.select().count(), m.interaction.select().count()


def test_a_duplicate_writes_nothing_in_any_tenant(host, store):
    join(host)
    join(host, exp="exp_2")
    say(host, "nonsense", "m1")
    before = counts(store)
    assert say(host, "1", "m1", exp="exp_2").status == "duplicate"
    assert counts(store) == before
    assert store.tenant("exp_2").active("user_1").invalid_count == 0


def test_a_misrouted_message_does_not_use_up_its_id(host, store):
    join(host)
    assert say(host, "1", "m2", user="nobody").status == "unrouted"  # nothing stored
    assert say(host, "1", "m2", exp="exp_elsewhere").status == "unrouted"
    assert counts(store) == (1, 0)  # the welcome only
    # The same message id, delivered for the right conversation, is processed there.
    assert say(host, "1", "m2").status == "advanced"
    assert store.tenant("exp_1").active("user_1").block == "email"
    assert say(host, "1", "m2").status == "duplicate"


def test_an_inbound_id_of_our_own_sent_message_is_never_a_reply(host, store):
    # e.g. the bot's own DM echoed back by a webhook when WHOP_BOT_USER_ID is not set
    conv = join(host).conversation
    m = store.models.message
    m.update(whop_message_id="w_sent").where(
        (m.conversation == conv.id) & (m.direction == "out")).execute()
    assert say(host, "nonsense", "w_sent").status == "own_message"
    assert store.tenant("exp_1").active("user_1").invalid_count == 0
    assert not list(store.tenant("exp_1").interactions())


def test_the_prebuilt_lookup_reads_what_peewee_reads(host, store):
    join(host, user_name="Ada")
    say(host, "nonsense", "m1")
    c = store.models.conversation
    fast = store.tenant("exp_1").active("user_1")
    slow = c.select().where((c.experience_id == "exp_1") & (c.active_user == "user_1")).get()
    columns = {f.name: f.column_name for f in c._meta.sorted_fields}
    slow_data = {columns[k]: v for k, v in slow.__data__.items()}
    fast_data = dataclasses.asdict(fast)
    assert fast_data == slow_data
    assert {k: type(v) for k, v in fast_data.items()} == {
        k: type(v) for k, v in slow_data.items()}
    assert store.tenant("exp_2").active("user_1") is None  # scoped by tenant


def test_a_crash_before_commit_leaves_nothing_half_written(store, clock):
    good = Host(store, {"onboarding": ONBOARDING}, clock=clock)
    join(good)
    before = store.tenant("exp_1").active("user_1")
    crashing = Store(store.url)  # the same database, in a process that dies mid-transaction

    def power_cut(*rows):
        raise RuntimeError("power cut")

    # The visit row comes after the state and the interaction (on PostgreSQL the whole
    # write is one statement, so this stops it before it is sent).
    crashing.sql.visit.params = power_cut
    try:
        with pytest.raises(RuntimeError, match="power cut"):
            say(Host(crashing, {"onboarding": ONBOARDING}, clock=clock), "1", "m1")
    finally:
        crashing.close()
    after = store.tenant("exp_1").active("user_1")
    assert (after.block, after.revision) == (before.block, before.revision)
    assert list(store.tenant("exp_1").interactions()) == []
    assert len(list(store.tenant("exp_1").messages())) == 1  # only the welcome
    # nothing was lost either: the same message is processed when it is delivered again
    assert say(good, "1", "m1").status == "advanced"
    assert store.tenant("exp_1").active("user_1").block == "email"


def test_tenants_are_isolated(host, store):
    a = join(host, exp="exp_a").conversation
    b = join(host, exp="exp_b").conversation
    assert a.id != b.id
    say(host, "1", "m1", exp="exp_a")
    assert store.tenant("exp_a").active("user_1").block == "email"
    assert store.tenant("exp_b").active("user_1").block == "welcome"
    with pytest.raises(ConversationNotFound):
        store.tenant("exp_b").conversation(a.id)
    assert [c.id for c in store.tenant("exp_b").conversations()] == [b.id]
    assert say(host, "1", "m2", exp="exp_c").status == "unrouted"


def test_a_join_after_the_end_starts_a_new_conversation(host, store):
    first = join(host).conversation
    say(host, "2", "m1")
    second = join(host)
    assert second.status == "started"
    assert second.conversation.id != first.id


def test_the_sweep_ends_expired_conversations_once(store, clock, calls):
    host = Host(store, {"onboarding": ONBOARDING}, clock=clock, callbacks=calls, batch_size=3)
    for i in range(7):
        join(host, user=f"u{i}", exp="exp_a" if i < 4 else "exp_b")
    clock.advance(hours=2)
    join(host, user="fresh", exp="exp_a")
    clock.advance(hours=23)
    result = host.sweep()
    assert dict(result.ended) == {"exp_a": 4, "exp_b": 3}
    assert sorted(c for c in calls.calls if c[0] == "timeout") == sorted(
        ("timeout", r.id) for r in store.tenant("exp_a").conversations()
        + store.tenant("exp_b").conversations() if r.end_reason == "timeout")
    assert len([c for c in calls.calls if c[0] == "timeout"]) == 7
    assert host.sweep().total == 0
    assert store.tenant("exp_a").active("fresh") is not None
    assert store.effects.pending() == 0


def test_a_reply_after_expiry_is_treated_as_after_the_timeout(host, store, clock, calls):
    conv = join(host).conversation
    clock.advance(hours=24)
    out = say(host, "1", "m1")
    assert (out.conversation.status, out.conversation.end_reason) == ("abandoned", "timeout")
    assert out.messages == ()
    assert ("timeout", conv.id) in calls.calls
    rows = list(store.tenant("exp_1").interactions())
    assert [r.classification for r in rows] == ["late"]
    assert host.sweep().total == 0


def test_reminders_are_sent_once(store, clock):
    host = Host(store, {"onboarding": ONBOARDING}, clock=clock, reminder=23 * 3600)
    join(host)
    clock.advance(hours=23)
    assert host.sweep().reminded == 1
    assert host.sweep().reminded == 0
    assert outbox(store)[-2] == "Are you still there? Reply to pick up where we left off."


def test_hook_calls_lost_in_a_crash_fire_on_a_later_sweep(store, clock, calls):
    dying = Host(store, {"onboarding": ONBOARDING}, clock=clock, callbacks=calls)
    dying.calls.fire = lambda ids=None: 0  # the process died between the commit and the hook call
    conv = join(dying).conversation
    say(dying, "2", "m1")
    assert calls.calls == []
    healthy = Host(store, {"onboarding": ONBOARDING}, clock=clock, callbacks=calls)
    # Nobody claimed it, so it is due at once: the next sweep (of any worker) fires it.
    assert healthy.sweep().hooks_recovered == 1
    assert calls.calls == [("end", conv.id, "completed")]
    assert healthy.sweep().hooks_recovered == 0


def test_schema_must_be_upgraded_before_use(db_url_factory):
    url = db_url_factory("sqlite")
    fresh = Store(url)
    try:
        with pytest.raises(SchemaOutOfDate, match="run `whopfunnel db upgrade`"):
            fresh.check_schema()
        assert fresh.upgrade() == (0, SCHEMA_VERSION)
        fresh.check_schema()
        assert fresh.upgrade() == (SCHEMA_VERSION, SCHEMA_VERSION)
        info = fresh.models.schema
        info.update(value="0").where(info.key == "schema_version").execute()
        with pytest.raises(SchemaOutOfDate, match="is at schema version 0"):
            fresh.check_schema()
    finally:
        fresh.close()


def test_a_conversation_keeps_the_funnel_version_it_started_on(store, clock):
    from dataclasses import replace

    host = Host(store, {"onboarding": ONBOARDING}, clock=clock)
    join(host)
    edited_block = replace(ONBOARDING.blocks["trading_guide"], message="EDITED {guide_url}")
    edited = replace(ONBOARDING, blocks={**ONBOARDING.blocks, "trading_guide": edited_block})
    new_host = Host(store, {"onboarding": edited}, clock=clock)
    join(new_host, user="user_2")
    assert say(new_host, "1", "m1").messages[0].startswith("Here is the free guide")
    assert say(new_host, "1", "m2", user="user_2").messages[0].startswith("EDITED")
    versions = {c.funnel_version_id for c in store.tenant("exp_1").conversations()}
    assert len(versions) == 2


# -- concurrency: real connections, several threads ------------------------------------------


def _threads(n, target, store):
    barrier = threading.Barrier(n)
    errors = []

    def run(i):
        try:
            barrier.wait()
            target(i)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            store.db.close()  # this thread's connection

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


def test_concurrent_joins_make_one_active_conversation(host, store):
    _threads(6, lambda i: join(host), store)
    assert len(store.tenant("exp_1").conversations()) == 1
    assert len(outbox(store)) == 1


def test_concurrent_replies_never_advance_a_conversation_twice(host, store):
    join(host)
    _threads(2, lambda i: say(host, "1", f"m{i}"), store)
    conv = store.tenant("exp_1").active("user_1")
    rows = list(store.tenant("exp_1").interactions())
    # one reply moved welcome -> email; the other was judged on the email block
    assert sorted((r.block, r.classification) for r in rows) == [("email", "invalid"),
                                                                 ("welcome", "valid")]
    assert conv.block == "email"
    assert conv.revision == 3


def test_concurrent_invalid_replies_all_count(host, store):
    join(host)
    _threads(2, lambda i: say(host, "nonsense", f"m{i}"), store)
    assert store.tenant("exp_1").active("user_1").invalid_count == 2


def test_concurrent_duplicate_deliveries_are_processed_once(host, store):
    join(host)
    _threads(4, lambda i: say(host, "nonsense", "same"), store)
    assert store.tenant("exp_1").active("user_1").invalid_count == 1


def test_two_concurrent_sweepers_fire_on_timeout_once_each(store, clock, calls):
    host = Host(store, {"onboarding": ONBOARDING}, clock=clock, callbacks=calls, batch_size=7)
    for i in range(40):
        join(host, user=f"u{i}")
    clock.advance(hours=25)
    results = []
    _threads(2, lambda i: results.append(host.sweep()), store)
    assert sum(r.total for r in results) == 40
    timeouts = [c for c in calls.calls if c[0] == "timeout"]
    assert len(timeouts) == 40
    assert len(set(timeouts)) == 40


def test_stores_on_two_databases_keep_to_their_own(db_url_factory, clock):
    one, two = Store(db_url_factory("sqlite")), Store(db_url_factory("sqlite"))
    try:
        for store in (one, two):
            store.upgrade()
        a = Host(one, {"onboarding": ONBOARDING}, clock=clock)
        b = Host(two, {"onboarding": ONBOARDING}, clock=clock)
        join(a, user="ada")
        join(b, user="bob")
        say(a, "1", "m1", user="ada")
        assert [c.user_id for c in one.tenant("exp_1").conversations()] == ["ada"]
        assert [c.user_id for c in two.tenant("exp_1").conversations()] == ["bob"]
        assert one.tenant("exp_1").active("ada").block == "email"
        assert two.tenant("exp_1").active("bob").block == "welcome"
    finally:
        one.close()
        two.close()
