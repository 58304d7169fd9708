"""`whopfunnel stats` on a large SQLite database (issue 13: 1,000,000 conversations in seconds).

    python bench/bench_stats.py                          # 1,000,000 conversations
    python bench/bench_stats.py --conversations 100000   # quicker
    python bench/bench_stats.py --keep /tmp/stats.db     # keep (or reuse) the database

The schema is the real one (`Store(url).upgrade()`); the rows are bulk-inserted with plain
`sqlite3` executemany in the shapes the host writes them (a conversation row, a visit per
block entered, an interaction per reply, inbound/outbound messages, owner notices), from
eight paths through the example onboarding funnel and a split-test funnel, over 10
tenants, with random reply delays. Then the real command runs in a subprocess, timed
wall-clock (Python start-up included), and once in-process with a time per statement.
The figures are checked against the counts the fill produced.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

from _common import ROOT, machine, peak_rss_mb, summary, temp_dir

from whopfunnel_plugin.funnel.model import load_funnel
from whopfunnel_plugin.storage.stats import QUERIES, Scope, funnel_stats
from whopfunnel_plugin.storage.stats_sql import Dialect
from whopfunnel_plugin.storage.store import Store

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc).replace(tzinfo=None)
TENANTS = 10
# (weight, funnel, final block, status, end reason, steps). A step is ("visit", block), or
# ("reply", block, classification, option index, attempt, action, how), or ("owner", reason).
V, R, N = "visit", "reply", "owner"  # N: an owner notice
PATHS = [
    (30, "onboarding", "goodbye", "completed", "completed", [
        (V, "welcome"), (R, "welcome", "valid", 0, 0, None, "number"), (V, "trading_guide"),
        (V, "email"), (R, "email", "valid", None, 0, None, "input"), (V, "offer"),
        (R, "offer", "valid", 1, 0, None, "text"), (V, "goodbye")]),
    (18, "onboarding", "goodbye", "completed", "completed", [
        (V, "welcome"), (R, "welcome", "valid", 1, 0, None, "ordinal"), (V, "goodbye")]),
    (14, "onboarding", "email", "abandoned", "timeout", [
        (V, "welcome"), (R, "welcome", "valid", 0, 0, None, "fuzzy"), (V, "trading_guide"),
        (V, "email")]),
    (8, "onboarding", "welcome", "abandoned", "max_invalid_responses", [
        (V, "welcome"), (R, "welcome", "invalid", None, 1, "reprompt", ""),
        (R, "welcome", "invalid", None, 2, "notify_owner", ""), (N, "notify_owner"),
        (R, "welcome", "invalid", None, 3, "abandon", "")]),
    (10, "onboarding", "handoff", "handed_off", "handoff", [
        (V, "welcome"), (R, "welcome", "valid", 0, 0, None, "text"), (V, "trading_guide"),
        (V, "email"), (R, "email", "invalid", None, 1, "reprompt", ""),
        (R, "email", "valid", None, 0, None, "input"), (V, "offer"),
        (R, "offer", "valid", 0, 0, None, "text"), (V, "handoff"), (N, "handoff")]),
    (10, "onboarding", "welcome", "active", None, [
        (V, "welcome"), (R, "welcome", "ambiguous", None, 0, None, "number")]),
    (5, "ab", "buy", "completed", "completed", [
        (V, "pick"), (R, "pick", "split", 0, 0, None, ""), (V, "welcome_a"),
        (R, "welcome_a", "valid", 0, 0, None, "text"), (V, "buy")]),
    (5, "ab", "bye", "completed", "completed", [
        (V, "pick"), (R, "pick", "split", 1, 0, None, ""), (V, "welcome_b"),
        (R, "welcome_b", "valid", 1, 0, None, "number"), (V, "bye")]),
]
REPLY_TEXT = {"number": "1", "ordinal": "second", "fuzzy": "tradng", "text": "No thanks",
              "input": "ada@example.com", "": "what?"}
AB = {"id": "ab", "name": "Welcome test", "start": "pick", "escalation": None, "vars": {},
      "timeout": None, "on_rejoin": "keep", "reminder": "", "ambiguous_message": "", "file": "",
      "blocks": {
          "pick": {"type": "split", "branches": [{"weight": 50, "next": "welcome_a"},
                                                 {"weight": 50, "next": "welcome_b"}]},
          **{w: {"type": "question", "message": "", "next": None, "input": None, "save_as": None,
                 "url": None, "escalation": None,
                 "options": [{"text": "No thanks", "next": "buy", "synonyms": []},
                             {"text": "Maybe", "next": "bye", "synonyms": []}]}
             for w in ("welcome_a", "welcome_b")},
          "buy": {"type": "end"}, "bye": {"type": "end"}}}


def fill(path: str, conversations: int, seed: int, chunk: int = 20_000) -> dict:
    """The database, and what it holds: conversations per (funnel, status, reason)."""
    url = f"sqlite:///{path}"
    store = Store(url)
    store.upgrade()
    store.close()
    onboarding = load_funnel(ROOT / "funnels" / "onboarding.yaml")
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous = OFF")
    versions = {}
    for t in range(TENANTS):
        for funnel_id, definition in (("onboarding", onboarding.to_dict()), ("ab", AB)):
            cur = db.execute("INSERT INTO funnels (experience_id, funnel_id, version, definition, "
                             "created_at) VALUES (?, ?, ?, ?, ?)",
                             (f"exp_{t}", funnel_id, f"v{funnel_id}", json.dumps(definition),
                              T0.isoformat(" ")))
            versions[t, funnel_id] = cur.lastrowid
    rng = random.Random(seed)
    weights = [p[0] for p in PATHS]
    delays = [2, 4, 6, 9, 12, 15, 20, 30, 45, 60, 90, 120, 300, 900]
    expected: dict = {}
    start = time.perf_counter()
    cid = iid = mid = 0
    while cid < conversations:
        convs, visits, replies, messages = [], [], [], []
        for _ in range(min(chunk, conversations - cid)):
            cid += 1
            weight, funnel_id, final, status, reason, steps = rng.choices(PATHS, weights)[0]
            tenant = cid % TENANTS
            exp, when = f"exp_{tenant}", T0 + timedelta(seconds=cid * 2)
            started = when
            key = (exp, funnel_id, status, reason)
            expected[key] = expected.get(key, 0) + 1
            for step in steps:
                stamp = when.isoformat(" ")
                if step[0] == V:
                    visits.append((exp, cid, funnel_id, step[1], stamp))
                    mid += 1
                    messages.append((exp, cid, "out", f"u{cid}", None, "…", "sent", "member",
                                     None, 1, None, f"k{mid}", stamp))
                elif step[0] == R:
                    when += timedelta(seconds=rng.choice(delays))
                    stamp = when.isoformat(" ")
                    mid += 1
                    messages.append((exp, cid, "in", f"u{cid}", f"wm{mid}", REPLY_TEXT[step[6]],
                                     "received", "member", None, 0, None, None, stamp))
                    iid += 1
                    replies.append((exp, cid, mid, funnel_id, step[1], REPLY_TEXT[step[6]],
                                    *step[2:7], stamp))
                else:
                    mid += 1
                    messages.append((exp, cid, "out", f"u{cid}", None, "owner notice", "sent",
                                     "owner", "Member needs help", 1, None,
                                     f"wf-owner-{cid}-{step[1]}", stamp))
            active = status == "active"
            convs.append((cid, exp, f"u{cid}", f"u{cid}" if active else None,
                          versions[tenant, funnel_id], funnel_id, final, status, reason, 0, "{}",
                          int(any(step[0] == N for step in steps)), 0, started.isoformat(" "),
                          when.isoformat(" "),
                          (when + timedelta(hours=24)).isoformat(" "),
                          None if active else when.isoformat(" "), 1))
        with db:
            db.executemany(
                "INSERT INTO conversations (id, experience_id, user_id, active_user, "
                "funnel_version_id, funnel_id, block, status, end_reason, invalid_count, variables, "
                "owner_notified, reminder_sent, started_at, last_activity, expires_at, ended_at, "
                "revision) VALUES (" + ", ".join("?" * 18) + ")", convs)
            db.executemany("INSERT INTO visits (experience_id, conversation_id, funnel_id, block, "
                           "created_at) VALUES (?, ?, ?, ?, ?)", visits)
            db.executemany(
                "INSERT INTO interactions (experience_id, conversation_id, message_id, funnel_id, "
                "block, text, classification, option_index, attempt, action, how, created_at) "
                "VALUES (" + ", ".join("?" * 12) + ")", replies)
            db.executemany(
                "INSERT INTO messages (experience_id, conversation_id, direction, user_id, "
                "whop_message_id, text, status, recipient, title, attempts, next_attempt_at, "
                "idempotency_key, created_at) VALUES (" + ", ".join("?" * 13) + ")", messages)
    db.execute("ANALYZE")
    db.close()
    print(f"filled {conversations:,} conversations, {iid:,} interactions, {mid:,} messages in "
          f"{time.perf_counter() - start:.1f} s; file {os.path.getsize(path) / 2**20:.0f} MB")
    return expected


def run_cli(url: str, *args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "whopfunnel_plugin", "stats", "--db", url, *args],
                          capture_output=True, text=True, cwd=ROOT)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"whopfunnel stats failed: {proc.stderr}")
    return took


def check(report, expected: dict) -> None:
    status_of = {"completed": "completed", "handoff": "handed_off", "transitioned": "transitioned"}
    got: dict = {}
    for f in report:
        if f.statuses["active"]:
            got[f.experience_id, f.funnel_id, "active", None] = f.statuses["active"]
        for reason, n in f.end_reasons.items():
            got[f.experience_id, f.funnel_id, status_of.get(reason, "abandoned"), reason] = n
    assert got == expected, "the figures do not match the fill"
    print(f"checked: {sum(expected.values()):,} conversations in {len(report)} funnel versions, "
          "statuses and end reasons as filled")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--keep", default=None, help="database file to keep (reused if it exists)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with temp_dir() as tmp:
        path = args.keep or str(tmp / "stats.db")
        expected = None if os.path.exists(path) else fill(path, args.conversations, args.seed)
        url = f"sqlite:///{path}"
        print(f"\nwhopfunnel stats (subprocess, wall clock, Python start-up included; load average "
              f"{os.getloadavg()[0]:.1f}):")
        for label, extra in (("all tenants, table", []), ("all tenants, json", ["--format", "json"]),
                             ("all tenants, csv", ["--format", "csv"]),
                             ("one tenant", ["--experience", "exp_3"]),
                             ("one week", ["--since", "2026-01-05", "--until", "2026-01-11"])):
            times = [run_cli(url, *extra) for _ in range(args.repeat)]
            print(f"  {label:<20} {summary(times, 1, 's')}")
        store = Store(url)
        print(f"\nin-process funnel_stats (load average {os.getloadavg()[0]:.1f}):")
        for workers in (1, 2, 2):
            wall, cpu = time.perf_counter(), time.process_time()
            report = funnel_stats(store, Scope(), workers=workers)
            print(f"  workers={workers}: {time.perf_counter() - wall:6.2f} s wall, "
                  f"{time.process_time() - cpu:6.2f} s CPU (all threads)")
        print(f"  peak RSS {peak_rss_mb():.0f} MB")
        if expected is not None:
            check(report, expected)
        print(f"\neach statement alone, with its plan (load average {os.getloadavg()[0]:.1f}):")
        d = Dialect(store.db, "sqlite")
        for name, build in QUERIES.items():
            sql, params = build(d, Scope())
            wall, cpu = time.perf_counter(), time.process_time()
            rows = store.db.execute_sql(sql, params).fetchall()
            plan = store.db.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            print(f"  {name:<20} {time.perf_counter() - wall:6.2f} s wall "
                  f"{time.process_time() - cpu:6.2f} s CPU, {len(rows)} rows: "
                  + "; ".join(r[3] for r in plan))
        store.close()


if __name__ == "__main__":
    main()
