"""Real faults against real processes: several `whopfunnel serve` workers on one
database, a database that restarts under them, a worker killed mid-send.

These are the guarantees of README "Guarantees", each with its bound. A bound is waited
for with `wait_for(..., timeout=<the bound>)`: the test fails when the guarantee does."""

from __future__ import annotations

import collections
import os
import uuid

import pytest

from whopfunnel_plugin.service.leases import LEASE
from whopfunnel_plugin.whop.fake import FakeWhop, serve_in_thread

from ..conftest import FUNNELS
from ..tools import (
    InFlight,
    PrivatePostgres,
    Workers,
    deliver,
    hook_calls,
    plugin_yaml,
    postgres_bin,
    query,
    serve_env,
    socket_owner,
    wait_for,
    write_recorder,
)

SECRET = "ws_faults_secret"
LEASE_S = LEASE.total_seconds()
RECORDER = '''\
import os
from whopfunnel_plugin import hookimpl

LOG = os.environ["WF_HOOK_LOG"]

def _write(line):
    with open(LOG, "a") as out:
        out.write(line + "\\n")

@hookimpl
def on_conversation_end(conversation):
    _write(f"end {conversation.id} {conversation.end_reason} {os.getpid()}")

@hookimpl
def on_timeout(conversation):
    _write(f"timeout {conversation.id} {os.getpid()}")
'''


@pytest.fixture
def fake():
    fake = FakeWhop("faults_api_key", owners={"biz_1": "user_owner"})
    fake.inflight = InFlight(fake)  # which worker a request in flight comes from
    url, stop = serve_in_thread(fake.inflight)
    fake.url = url
    yield fake
    stop()


def hook_lines(tmp_path) -> list[list[str]]:
    log = tmp_path / "hooks.log"
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def recorded(tmp_path) -> collections.Counter:
    """(hook, conversation id) -> how many times it fired, over all workers."""
    return collections.Counter((words[0], words[1]) for words in hook_lines(tmp_path))


def workers_on(tmp_path, fake, database: str, count: int, extra: str = "",
               funnels=("onboarding",)) -> Workers:
    (tmp_path / "wf_recorder.py").write_text(RECORDER)
    plugin_yaml(tmp_path, database, fake.url, funnels=funnels,
                extra="plugins: [wf_recorder]\n" + extra)
    env = serve_env(fake, SECRET, WF_HOOK_LOG=str(tmp_path / "hooks.log"),
                    PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    workers = Workers(tmp_path, env, count)
    workers.run("db", "upgrade")
    return workers


MULTI = ["postgres", "mysql"]


@pytest.mark.server_db
@pytest.mark.slow
@pytest.mark.parametrize("engine", MULTI)
def test_four_workers_fire_each_hook_call_once(tmp_path, fake, db_url_factory, engine):
    fast = (FUNNELS / "onboarding.yaml").read_text().replace("timeout: 24h", "timeout: 6s")
    workers = workers_on(tmp_path, fake, db_url_factory(engine), 4,
                         extra="timeouts: {sweep_every: 1s}\n")
    (tmp_path / "funnels" / "onboarding.yaml").write_text(fast)
    workers.start_all()
    urls = [workers.url(i) for i in range(4)]
    try:
        members = [f"user_{i}" for i in range(40)]
        for n, user in enumerate(members):
            deliver(urls[n % 4:] + urls[:n % 4], fake.membership_activated(user, "prod_1", "biz_1"),
                    SECRET)
        for n, user in enumerate(members[:20]):  # half finish the funnel; the rest time out
            deliver(urls[(n + 1) % 4:] + urls[:(n + 1) % 4],
                    fake.member_says(user, "2", company_id="biz_1"), SECRET)
        ends = lambda: [w for w in hook_lines(tmp_path) if w[0] == "end"]  # noqa: E731
        wait_for(lambda: len(ends()) >= 40, timeout=60, what="an end for each conversation")
        timed_out = {w[1] for w in ends() if w[2] == "timeout"}
        wait_for(lambda: {k[1] for k in recorded(tmp_path) if k[0] == "timeout"} >= timed_out,
                 timeout=30, what="on_timeout for each timed-out conversation")
        wait_for(lambda: all(len(fake.sent_messages(fake.channel_for(u, "biz_1"))) >= 1
                             for u in members), timeout=30, what="every welcome")
    finally:
        workers.stop_all()
    counts = recorded(tmp_path)
    assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1]  # never twice
    ended = {k[1] for k in counts if k[0] == "end"}
    assert len(ended) == 40
    timed_out = {w[1] for w in hook_lines(tmp_path) if w[0] == "end" and w[2] == "timeout"}
    assert {k[1] for k in counts if k[0] == "timeout"} == timed_out
    assert len(timed_out) >= 20  # the 20 who never answered, at least
    assert len({w[-1] for w in hook_lines(tmp_path)}) > 1  # the work was shared by workers
    for user in members:  # and no message reached a member twice
        texts = [m["content"] for m in fake.sent_messages(fake.channel_for(user, "biz_1"))]
        assert len(texts) == len(set(texts)), (user, texts)


needs_postgres = pytest.mark.skipif(postgres_bin() is None,
                                    reason="PostgreSQL server binaries (initdb) are missing")


@needs_postgres
@pytest.mark.slow
def test_a_database_restart_is_survived_without_a_process_restart(tmp_path, fake):
    cluster, workers = PrivatePostgres(), None
    try:
        cluster.start()
        workers = workers_on(tmp_path, fake, cluster.create_database("wf"), 1)
        workers.start()
        url = workers.url()
        for user in ("user_a", "user_b"):
            assert deliver([url], fake.membership_activated(user, "prod_1", "biz_1"),
                           SECRET)["status"] == "started"
        cluster.stop()
        import httpx

        from ..tools import post_webhook

        health = httpx.get(url + "/healthz", timeout=5)
        assert health.status_code == 503  # honest: the database is down
        during = fake.membership_activated("user_c", "prod_1", "biz_1")
        refused = post_webhook(url, during, SECRET)
        assert refused.status_code == 503
        assert refused.headers["retry-after"].isdigit()
        reply = fake.member_says("user_a", "1", company_id="biz_1")
        assert post_webhook(url, reply, SECRET).status_code == 503
        cluster.start()
        # The same worker, no restart: the next request reconnects.
        wait_for(lambda: workers.healthy(), timeout=10, what="/healthz after the restart")
        assert deliver([url], during, SECRET)["status"] == "started"  # Whop's redelivery
        assert deliver([url], reply, SECRET)["status"] == "advanced"
        channel = fake.channel_for("user_a", "biz_1")
        # The welcome may have been sent just as the database went away, before it could be
        # marked sent: its lease runs out (LEASE) and it is resent with the same key.
        wait_for(lambda: len(fake.sent_messages(channel)) == 3, timeout=LEASE_S + 10,
                 what="the replies queued before and after the outage")
        wait_for(lambda: fake.sent_messages(fake.channel_for("user_c", "biz_1")), timeout=10,
                 what="the welcome of the member who joined during the outage")
        # And once more: the job thread recovered as well as the request threads.
        cluster.restart(down_for=1.0)
        late = fake.membership_activated(f"user_{uuid.uuid4().hex[:6]}", "prod_1", "biz_1")
        assert deliver([url], late, SECRET, give_up_after=30)["status"] == "started"
        wait_for(lambda: fake.sent_messages(fake.channel_for(late["data"]["user_id"], "biz_1")),
                 timeout=10, what="a welcome after the second restart")
        workers.stop_all()
        logs = workers.logs()
        assert "Traceback" not in logs  # an outage is one line now and then, not a flood
        assert "waits for the database" in logs and "the database is back" in logs
    finally:
        if workers is not None:
            workers.stop_all()  # idempotent; a failed wait must not leave workers running
        cluster.close()


# -- a worker killed while a message is being sent (issue 10, item 1) -------------------------

RECOVERY = 30  # SPEC §6: seconds after a restart (or a death, with others alive)


def sending(fake, workers: Workers) -> tuple[int, str] | None:
    """(worker index, Idempotency-Key) of a POST /messages in flight now, if any."""
    pids = workers.pids()
    for request in fake.inflight.now("/messages"):
        pid = socket_owner(request["port"], pids)
        if request["method"] == "POST" and pid is not None:
            return pids[pid], request["key"]
    return None


def queue_replies(fake, urls, members) -> None:
    """Each member joins and answers "1" at once: three messages queue in their lane
    (the welcome, the guide, the email question) while the first is being sent."""
    for user in members:
        assert deliver(urls, fake.membership_activated(user, "prod_1", "biz_1"), SECRET)["status"] \
            == "started"
        assert deliver(urls, fake.member_says(user, "1", company_id="biz_1"), SECRET)["status"] \
            == "advanced"


def outbox(url: str) -> dict[str, list[dict]]:
    """Member -> their outbound rows, oldest first."""
    rows = query(url, "SELECT id, user_id, text, status, idempotency_key FROM messages "
                      "WHERE direction = 'out' ORDER BY id")
    found: dict[str, list[dict]] = collections.defaultdict(list)
    for row in rows:
        found[row["user_id"]].append(row)
    return found


def all_sent(fake, url: str, members) -> bool:
    rows = outbox(url)
    return all(len(rows[u]) == 3 and all(r["status"] == "sent" for r in rows[u]) for u in members) \
        and all(len(fake.sent_messages(fake.channel_for(u, "biz_1"))) >= 3 for u in members)


def assert_sent_once_in_order(fake, url: str, members, in_flight_key: str) -> None:
    rows = outbox(url)
    for user in members:
        visible = fake.sent_messages(fake.channel_for(user, "biz_1"))
        # once each, with the key of its outbox row, in the order the rows were queued
        assert [m["idempotency_key"] for m in visible] == [r["idempotency_key"] for r in rows[user]]
        assert [m["content"] for m in visible] == [r["text"] for r in rows[user]]
    posts = [r for r in fake.seen_requests() if r.idempotency_key == in_flight_key]
    # The send in flight reached Whop (the fake finishes a request whose client died), and it
    # was sent again after the kill with the same key: Whop deduplicated it, shown once.
    assert len(posts) >= 2, posts
    assert sum(m["idempotency_key"] == in_flight_key for m in fake.sent_messages()) == 1


@pytest.mark.slow
def test_a_worker_killed_mid_send_sends_everything_pending_within_30s_of_its_restart(
        tmp_path, fake, db_url_factory):
    url = db_url_factory("sqlite")
    workers = workers_on(tmp_path, fake, url, 1)
    workers.start()
    members = ["user_a", "user_b"]
    try:
        fake.slow(2.0)  # every request to Whop takes 2 s: the kill lands on a send in flight
        queue_replies(fake, [workers.url()], members)
        _, key = wait_for(lambda: sending(fake, workers), timeout=30, what="a send in flight")
        workers.kill()
        fake.clear_faults()
        workers.start(wait=False)  # the restart: everything pending goes within 30 s of it
        wait_for(lambda: all_sent(fake, url, members), timeout=RECOVERY,
                 what="every pending message after the restart")
    finally:
        workers.stop_all()
    assert_sent_once_in_order(fake, url, members, key)


@pytest.mark.server_db
@pytest.mark.slow
@pytest.mark.parametrize("engine", MULTI)
def test_when_a_worker_dies_mid_send_the_survivor_takes_over_within_30s(
        tmp_path, fake, db_url_factory, engine):
    url = db_url_factory(engine)
    workers = workers_on(tmp_path, fake, url, 2)
    workers.start_all()
    urls = [workers.url(0), workers.url(1)]
    members = [f"user_{i}" for i in range(4)]
    try:
        fake.slow(2.0)
        queue_replies(fake, urls, members)
        dead, key = wait_for(lambda: sending(fake, workers), timeout=30, what="a send in flight")
        workers.kill(dead)  # and not restarted: the other worker must take its work over
        fake.clear_faults()
        wait_for(lambda: all_sent(fake, url, members), timeout=RECOVERY,
                 what="the dead worker's messages, sent by the survivor")
        assert workers.alive(1 - dead) and not workers.alive(dead)
    finally:
        workers.stop_all()
    assert_sent_once_in_order(fake, url, members, key)


# -- hook calls and a database outage (found by the soak's design review; see the report) --


def slow_hook_workers(tmp_path, fake, database: str, seconds: float, count: int = 1) -> Workers:
    """Workers whose recorder plugin (tools.RECORDER) takes `seconds` in every hook call."""
    name = write_recorder(tmp_path)
    plugin_yaml(tmp_path, database, fake.url, extra=f"plugins: [{name}]\n")
    env = serve_env(fake, SECRET, WF_HOOK_LOG=str(tmp_path / "hooks.log"), WF_HOOK_SLEEP=str(seconds),
                    PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    workers = Workers(tmp_path, env, count)
    workers.run("db", "upgrade")
    return workers


@needs_postgres
@pytest.mark.slow
@pytest.mark.parametrize("hook, replies", [
    ("on_conversation_end", ["2"]),  # "Just exploring": the conversation ends
    ("on_owner_notify", ["what?", "what?"]),  # the second invalid reply tells the owner
])
def test_a_hook_call_running_during_a_database_outage_fires_once(tmp_path, fake, hook, replies):
    cluster, workers = PrivatePostgres(), None
    try:
        cluster.start()
        url = cluster.create_database("wf")
        workers = slow_hook_workers(tmp_path, fake, url, seconds=3)
        workers.start()
        log = tmp_path / "hooks.log"
        assert deliver([workers.url()], fake.membership_activated("user_a", "prod_1", "biz_1"),
                       SECRET)["status"] == "started"
        for text in replies:
            deliver([workers.url()], fake.member_says("user_a", text, company_id="biz_1"), SECRET)
        fired = lambda: [c for c in hook_calls(log) if c["hook"] == hook]  # noqa: E731
        wait_for(lambda: any(c["hook"] == "begin" and c["detail"] == hook for c in hook_calls(log)),
                 timeout=10, what=f"the {hook} call to start")
        cluster.stop()  # while the plugin's hook runs
        wait_for(fired, timeout=10, what="the hook to return")
        wait_for(lambda: "could not be recorded as done" in workers.logs(), timeout=10,
                 what="the worker to fail to record the call done")
        cluster.start()
        wait_for(lambda: query(url, "SELECT COUNT(*) AS n FROM pending_effects")[0]["n"] == 0,
                 timeout=RECOVERY, what="the hook call queue to empty after the outage")
        if hook == "on_owner_notify":  # and the owner is told once all the same
            wait_for(lambda: fake.sent_messages(fake.channel_for("user_owner", "biz_1")),
                     timeout=RECOVERY, what="the owner's DM")
        workers.stop_all()
        assert len(fired()) == 1, fired()
        assert len(fake.sent_messages(fake.channel_for("user_owner", "biz_1"))) == \
            (1 if hook == "on_owner_notify" else 0)
    finally:
        if workers is not None:
            workers.stop_all()
        cluster.close()


@pytest.mark.server_db
@pytest.mark.slow
def test_a_conversations_owner_dms_keep_their_order_across_workers(tmp_path, fake, db_url_factory):
    url = db_url_factory("postgres")
    workers = slow_hook_workers(tmp_path, fake, url, seconds=3, count=2)
    workers.start_all()
    a, b = workers.url(0), workers.url(1)
    log = tmp_path / "hooks.log"

    def say(url, user, text):
        return deliver([url], fake.member_says(user, text, company_id="biz_1"), SECRET)["status"]

    def begun(user_conversation: int, hook: str) -> bool:
        return any(c["hook"] == "begin" and c["detail"] == hook and c["conversation"] == user_conversation
                   for c in hook_calls(log))

    try:
        for user in ("user_p", "user_q", "user_z", "user_x"):
            deliver([a], fake.membership_activated(user, "prod_1", "biz_1"), SECRET)
        ids = {r["user_id"]: r["id"] for r in query(url, "SELECT id, user_id FROM conversations")}
        assert say(a, "user_p", "2") == "ended"  # each worker busy with a slow hook call...
        assert say(b, "user_q", "2") == "ended"
        wait_for(lambda: begun(ids["user_p"], "on_conversation_end")
                 and begun(ids["user_q"], "on_conversation_end"), timeout=10, what="both busy")
        assert say(a, "user_z", "2") == "ended"  # ...while two more calls fall due: Z's end,
        say(a, "user_x", "what?")
        assert say(a, "user_x", "what?") == "advanced"  # and X's first owner notification
        wait_for(lambda: begun(ids["user_z"], "on_conversation_end"), timeout=15,
                 what="a worker to take Z's and X's calls as one batch")
        for text in ("1", "x@example.com", "1"):  # X asks for a person: the second notification
            say(b, "user_x", text)
        owner = fake.channel_for("user_owner", "biz_1")
        wait_for(lambda: len(fake.sent_messages(owner)) == 2, timeout=RECOVERY,
                 what="both owner DMs")
    finally:
        workers.stop_all()
    lane = query(url, "SELECT idempotency_key FROM messages WHERE recipient = 'owner' ORDER BY id")
    assert [r["idempotency_key"].rsplit("-", 1)[-1] for r in lane] == ["notify_owner", "handoff"]
    texts = [m["content"] for m in fake.sent_messages(owner)]
    assert "needs help" in texts[0] and "asked for a person" in texts[1], texts


@pytest.mark.server_db
@pytest.mark.slow
def test_the_survivor_takes_over_within_30s_while_whop_is_slow_and_a_backlog_waits(
        tmp_path, fake, db_url_factory):
    url = db_url_factory("postgres")
    workers = workers_on(tmp_path, fake, url, 2)
    workers.start_all()
    urls = [workers.url(0), workers.url(1)]
    try:
        fake.slow(1.0)  # a slow Whop: each welcome takes 2 s (open the DM channel, post)
        for n in range(30):  # a minute of sends for one worker
            deliver(urls, fake.membership_activated(f"user_{n}", "prod_1", "biz_1"), SECRET)
        dead, key = wait_for(lambda: sending(fake, workers), timeout=30, what="a send in flight")
        workers.kill(dead)
        posts = lambda: [r for r in fake.seen_requests() if r.idempotency_key == key]  # noqa: E731
        wait_for(lambda: len(posts()) >= 2, timeout=RECOVERY,
                 what="the dead worker's message, sent again by the survivor")
    finally:
        workers.stop_all()
