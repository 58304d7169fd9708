"""The soak of bench/soak.py, shortened: 40 members, 2 workers, 1 SIGKILL restart, 1 restart
of a private PostgreSQL cluster, Whop misbehaving in between. Nothing lost, duplicated,
reordered or wrong, no hook call twice, and every recovery within SPEC §6's 30 s."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys

import pytest

from .conftest import ROOT
from .tools import postgres_bin


def load_soak():
    """bench/soak.py as a module (bench/ is no package), the harness itself, not a copy."""
    name = "wf_bench_soak"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "soak.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL server binaries (initdb) are missing")
def test_the_short_soak_loses_duplicates_reorders_and_corrupts_nothing():
    soak = load_soak()
    options = soak.Options(members=40, workers=2, kills=1, db_restarts=1, timeout=6,
                           arrive_over=25, down_for=(1.0, 1.0))
    summary = soak.run_soak(options, log=lambda line: None)
    report = summary.text()
    assert summary.counts() == {"lost": 0, "duplicated": 0, "reordered": 0, "wrong state": 0,
                                "hooks fired twice": 0}, report
    kinds = [r.fault for r in summary.recoveries]
    assert kinds.count("DB restart") == 1 and sum(k.startswith("SIGKILL") for k in kinds) == 1
    assert summary.max_recovery is not None and summary.max_recovery <= soak.BOUND, report
    assert not summary.problems, report
    info = summary.findings.info
    # The run did what it says: conversations ended every way, and copies were refused.
    assert info["outbox rows"] > 40 and info["outbox rows"] == info["visible messages"], report
    assert info["ended abandoned/timeout"] and info["ended completed/completed"], report
    assert any(k.startswith("webhooks ") and " copy " in k for k in info), report
    assert summary.passed, report

    # And the checks can fail: each kind of fault, planted in a copy of what was collected.
    c = summary.collected
    check = soak.check
    assert check(c).ok
    member_rows = {m["idempotency_key"]: m for m in c.messages if m["direction"] == "out"}
    lanes: dict = {}
    for n, sent in enumerate(c.sent):
        row = member_rows[sent["idempotency_key"]]
        lanes.setdefault((row["conversation_id"], row["recipient"]), []).append(n)
    first, second = next(v for v in lanes.values() if len(v) >= 2)[:2]
    swapped = list(c.sent)
    swapped[first], swapped[second] = swapped[second], swapped[first]
    conv = dict(c.conversations[0], invalid_count=c.conversations[0]["invalid_count"] + 1)
    fired = next(h for h in c.hook_calls if h["hook"] == "on_conversation_end")
    planted = {
        "lost": dataclasses.replace(c, sent=c.sent[1:]),
        "duplicated": dataclasses.replace(c, sent=[*c.sent, {**c.sent[0], "idempotency_key": "other"}]),
        "reordered": dataclasses.replace(c, sent=swapped),
        "wrong state": dataclasses.replace(c, conversations=[conv, *c.conversations[1:]]),
        "hooks fired twice": dataclasses.replace(c, hook_calls=[*c.hook_calls, {**fired, "pid": 1}]),
    }
    for name, altered in planted.items():
        found = check(altered)
        assert found.count(name) >= 1, (name, found.problems)
    # A reply answered "advanced" whose interaction is missing is lost; stored twice, duplicated.
    reply = next(i for i in c.interactions if i["whop_message_id"])
    without = [i for i in c.interactions if i is not reply]
    assert check(dataclasses.replace(c, interactions=without)).count("lost") >= 1
    twice = [*c.interactions, {**reply, "id": -1}]
    assert check(dataclasses.replace(c, interactions=twice)).count("duplicated") >= 1
