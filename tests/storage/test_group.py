"""Group commit on SQLite: writes arriving together share one commit, each is answered
only once committed, and one failing write never fails the others."""

from __future__ import annotations

import threading

import pytest

from whopfunnel_plugin.events import MemberJoined, MessageReceived
from whopfunnel_plugin.funnel.model import load_funnel
from whopfunnel_plugin.service.host import Host
from whopfunnel_plugin.storage.group import GroupCommit

from ..conftest import FUNNELS

ONBOARDING = load_funnel(FUNNELS / "onboarding.yaml")


def together(n, target):
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def run(i):
        try:
            barrier.wait()
            results[i] = target(i)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    return results


def test_concurrent_replies_share_commits_and_each_is_processed(sqlite_store, clock):
    host = Host(sqlite_store, {"onboarding": ONBOARDING}, clock=clock)
    for i in range(16):
        host.join(MemberJoined(experience_id="exp_1", user_id=f"u{i}"))
    group = sqlite_store.group
    commits, writes = group.commits, group.writes

    for round_ in range(3):  # a few rounds, so the threads surely meet at the lock
        def reply(i, round_=round_):
            return host.message(MessageReceived(experience_id="exp_1", user_id=f"u{i}",
                                                message_id=f"m{round_}-{i}", text="1")).status

        assert together(16, reply) == ["advanced"] * 16
    for i in range(16):  # "1" chose the guide, then was no email, twice
        conv = sqlite_store.tenant("exp_1").active(f"u{i}")
        assert (conv.block, conv.invalid_count) == ("email", 2)
    assert len(sqlite_store.tenant("exp_1").interactions()) == 48  # each reply once
    assert group.writes - writes >= 48  # every write of the process goes through the queue
    assert group.commits - commits < group.writes - writes  # some commits held several


def test_a_failing_write_in_a_batch_fails_alone():
    done = []
    committed = []

    class Savepoint:
        def __enter__(self):
            return self

        def __exit__(self, kind, exc, tb):
            return False

    def transaction(fn):
        fn()
        committed.append(True)

    group = GroupCommit(transaction, Savepoint, max_batch=8)
    started, release = threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(10)
        return "first"

    first = threading.Thread(target=lambda: done.append(group.run(slow)))
    first.start()
    assert started.wait(10)

    def broken():
        raise ValueError("this write fails")

    outcomes = {}

    def queue(name, fn):
        try:
            outcomes[name] = group.run(fn)
        except ValueError as exc:
            outcomes[name] = f"error: {exc}"

    others = [threading.Thread(target=queue, args=("ok", lambda: "fine")),
              threading.Thread(target=queue, args=("bad", broken))]
    for t in others:
        t.start()
    while len(group._queue) < 2:  # both wait behind the first commit
        threading.Event().wait(0.01)
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert done == ["first"]
    assert outcomes == {"ok": "fine", "bad": "error: this write fails"}
    assert len(committed) == 2  # the first alone, then the two queued together


def test_a_failed_commit_fails_every_write_of_its_batch():
    def transaction(fn):
        fn()
        raise OSError("disk full")

    group = GroupCommit(transaction, lambda: None)
    with pytest.raises(OSError, match="disk full"):
        group.run(lambda: "written?")
