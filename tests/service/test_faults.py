"""Real faults against real processes: several `whopfunnel serve` workers on one
database, a database that restarts under them, a worker killed mid-send.

These are the guarantees of README "Guarantees", each with its bound. A bound is waited
for with `wait_for(..., timeout=<the bound>)`: the test fails when the guarantee does."""

from __future__ import annotations

import collections
import os
import uuid

import pytest

from whopfunnel_plugin.whop.fake import FakeWhop, serve_in_thread

from ..conftest import FUNNELS
from ..tools import PrivatePostgres, Workers, deliver, plugin_yaml, postgres_bin, serve_env, wait_for

SECRET = "ws_faults_secret"
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
    url, stop = serve_in_thread(fake)
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
    cluster = PrivatePostgres()
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
        wait_for(lambda: len(fake.sent_messages(channel)) == 3, timeout=10,
                 what="the replies queued before and after the outage")
        wait_for(lambda: fake.sent_messages(fake.channel_for("user_c", "biz_1")), timeout=10,
                 what="the welcome of the member who joined during the outage")
        # And once more: the job thread recovered as well as the request threads.
        cluster.restart(down_for=1.0)
        late = fake.membership_activated(f"user_{uuid.uuid4().hex[:6]}", "prod_1", "biz_1")
        assert deliver([url], late, SECRET, give_up_after=30)["status"] == "started"
        wait_for(lambda: fake.sent_messages(fake.channel_for(late["data"]["user"]["id"], "biz_1")),
                 timeout=10, what="a welcome after the second restart")
        workers.stop_all()
        logs = workers.logs()
        assert "Traceback" not in logs  # an outage is one line now and then, not a flood
        assert "waits for the database" in logs and "the database is back" in logs
    finally:
        cluster.close()
