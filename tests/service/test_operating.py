"""Operating `whopfunnel serve` (issue 15): log lines an operator can read, secrets never
written, hook tracing visible, /readyz and /metrics on a real process."""

from __future__ import annotations

import json
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .serving import API_KEY, SECRET, Served, wait_for

LEAKY = '''
import logging, os
from whopfunnel_plugin import hookimpl

log = logging.getLogger("leaky")

@hookimpl
def on_member_join(event):
    # a careless plugin: every secret it can find, logged and raised
    log.warning("joined with key=%s secret=%s db=%s", os.environ["WHOP_API_KEY"],
                os.environ["WHOP_WEBHOOK_SECRET"], os.environ["DATABASE_URL"])
    raise RuntimeError("cannot sync: " + os.environ["WHOP_API_KEY"])
'''
LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 (DEBUG|INFO|WARNING|ERROR) +[\w.]+: ")


def samples(text: str) -> dict:
    """{(name, frozenset(labels)): value} of every sample in a /metrics page."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def served(tmp_path):
    made = []

    def make(**kwargs):
        made.append(Served(tmp_path, **kwargs))
        return made[-1]

    yield make
    for s in made:
        s.close()


@pytest.mark.server_db
def test_serve_logs_every_webhook_and_send_and_never_a_secret(served, tmp_path, db_url_factory):
    password = "pw_Zq81xV3mK0t"
    url = db_url_factory("postgres").replace("postgres@", f"postgres:{password}@", 1)
    (tmp_path / "leaky.py").write_text(LEAKY)
    s = served(extra_yaml="plugins: [leaky]\n",
               env={"DATABASE_URL": url, "PYTHONPATH": str(tmp_path), "WHOPFUNNEL_TRACE_HOOKS": "1"})
    proc = s.start("--log-level", "DEBUG")
    assert s.join("user_ada", name="Ada").json()["status"] == "started"
    wait_for(lambda: len(s.dms("user_ada")) == 1, what="the welcome")
    assert s.say("user_ada", "what?").json()["status"] == "advanced"
    wait_for(lambda: len(s.dms("user_ada")) == 3, what="the reprompt")
    assert s.post(s.fake.member_says("user_ada", "1", company_id="biz_1"),
                  secret="ws_wrong").status_code == 401
    assert s.post({"id": "evt_u", "type": "payment.succeeded", "data": {}}).json()["status"] == "ignored"
    assert s.stop(proc) == 0
    log = s.log()

    for secret in (API_KEY, SECRET, password):
        assert secret not in log
    assert "key=*** secret=*** db=postgresql://postgres:***@" in log
    assert "RuntimeError: cannot sync: ***" in log  # the traceback, redacted too
    lines = log.splitlines()
    records = [line for line in lines if LINE.match(line)]
    assert len(records) > 10
    hooks = [line.split(": ", 1)[1] for line in records if " whopfunnel.webhooks: " in line]
    hooks = [re.sub(r" in [\d.]+ ms$", "", h) for h in hooks]
    assert hooks[:2] == [
        "webhook membership.activated exp_1: 200 started",
        "webhook chat.message.created exp_1: 200 advanced (reply invalid, attempt 1, step reprompt)"]
    assert hooks[2].startswith("webhook - -: 401 refused (") and "signature" in hooks[2]
    assert hooks[3].startswith("webhook payment.succeeded -: 200 ignored (")
    assert len(hooks) == 4
    sends = [line for line in records if " whopfunnel.outbox: sent message " in line]
    assert len(sends) == 3 and all(" to the member of conversation 1 (exp_1) in " in x for x in sends)
    assert any(" DEBUG   whopfunnel.plugins: " in x and "on_member_join" in x for x in records)
    assert "WHOPFUNNEL_TRACE_HOOKS=1: every hook call is logged" in log
    assert "plugin 'leaky' failed in hook on_member_join" in log


def test_json_logs_readyz_and_metrics_after_known_traffic(served):
    s = served(extra_yaml="timeouts:\n  sweep_every: 1s\n")
    proc = s.start("--log-format", "json")
    ready = s.get("/readyz").json()
    assert ready["status"] == "ready" and list(ready["funnels"]) == ["onboarding"]
    s.join("user_ada", name="Ada")
    s.say("user_ada", "what?")       # invalid 1: reprompt
    s.say("user_ada", "1 or 2")      # ambiguous
    s.say("user_ada", "huh")         # invalid 2: notify_owner
    s.say("user_ada", "1")           # valid
    s.join("user_bob", name="Bob")
    s.post(s.fake.membership_deactivated("user_bob", "prod_1", "biz_1"))
    s.post({"id": "evt_x", "type": "payment.succeeded", "data": {}})
    s.post({"id": "evt_x", "type": "payment.succeeded", "data": {}})  # a redelivery

    def scrape():
        return samples(s.get("/metrics").text)

    found = wait_for(lambda: (f := scrape()) and value(
        f, "whopfunnel_conversations_ended_total", status="abandoned",
        reason="membership_ended") == 1 and value(f, "whopfunnel_outbox_pending") == 0
        and value(f, "whopfunnel_job_seconds_count", job="sweep") >= 1 and f,
        what="the end hook, an empty outbox and a sweep")
    assert value(found, "whopfunnel_webhooks_total", event="membership.activated", code="200",
                 outcome="started") == 2
    assert value(found, "whopfunnel_webhooks_total", event="chat.message.created", code="200",
                 outcome="advanced") == 4
    assert value(found, "whopfunnel_webhooks_total", event="payment.succeeded", code="200",
                 outcome="ignored") == 1
    assert value(found, "whopfunnel_webhooks_total", event="payment.succeeded", code="200",
                 outcome="duplicate") == 1
    for classification, count in (("invalid", 2), ("ambiguous", 1), ("valid", 1)):
        assert value(found, "whopfunnel_replies_total", classification=classification) == count
    assert value(found, "whopfunnel_escalation_steps_total", action="reprompt") == 1
    assert value(found, "whopfunnel_escalation_steps_total", action="notify_owner") == 1
    assert value(found, "whopfunnel_joins_total", funnel="onboarding", outcome="started") == 2
    assert value(found, "whopfunnel_sends_total", recipient="owner", result="sent") == 1
    assert value(found, "whopfunnel_send_seconds_count", recipient="member") == value(
        found, "whopfunnel_sends_total", recipient="member", result="sent") >= 7
    assert value(found, "whopfunnel_outbox_failed") == 0
    assert value(found, "whopfunnel_database_up") == 1
    assert value(found, "whopfunnel_funnels_loaded", funnel="onboarding",
                 version=ready["funnels"]["onboarding"]) == 1

    s.fake.fail_next(100_000, status=503)  # Whop is down: the reply waits in the outbox
    s.say("user_ada", "ada@example.com")
    found = wait_for(lambda: (f := scrape()) and value(f, "whopfunnel_outbox_pending") == 1 and value(
        f, "whopfunnel_sends_total", recipient="member", result="failed") >= 1 and f,
        what="a failed send, pending in the outbox")
    assert value(found, "whopfunnel_outbox_oldest_seconds") >= 0
    s.fake.clear_faults()
    assert s.stop(proc) == 0

    lines = [line for line in s.log().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    started = [r for r in records if r["logger"] == "whopfunnel.webhooks" and r.get("outcome") == "started"]
    assert [(r["event"], r["tenant"], r["code"]) for r in started] == [
        ("membership.activated", "exp_1", 200)] * 2
    assert all(isinstance(r["ms"], float) for r in started)
    assert any(r["logger"] == "whopfunnel.conversations" and r.get("reason") == "membership_ended"
               for r in records)
