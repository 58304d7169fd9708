"""Durable replies per second through `Host.message` on SQLite (WAL) vs a raw `sqlite3`
baseline doing the same storage work (SPEC §11: >= 0.5x the raw one-commit-per-reply rate),
and memory over many replies (SPEC §11: memory stays flat).

    python bench/bench_replies.py                          # 10,000 conversations, 40,000 replies
    python bench/bench_replies.py --replies 100000 --raw-replies 0   # memory over 100,000 replies
    python bench/bench_replies.py --replies 20000 --profile 30
    python bench/bench_replies.py --db pg                  # the Host on a temporary PostgreSQL database

Setup: a small loopable funnel (two questions that lead to each other, an end block that
is reachable but never chosen, an inline escalation ladder of three reprompts then a
`goto` back to the first question), 10,000 members joined through `Host.join`, then
replies to random members: 75% valid (`1`, `2`, `second`, `the first one`), 25% invalid
(which walk the ladder and loop back), each a `MessageReceived` with a unique message id.
Every conversation stays active, so every reply does the full read-decide-write.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import random
import sqlite3
import statistics
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from _common import (
    StatementRecorder,
    machine,
    peak_rss_mb,
    postgres_database,
    profile,
    rss_mb,
    temp_dir,
)

from whopfunnel_plugin.clock import FixedClock
from whopfunnel_plugin.events import MemberJoined, MessageReceived
from whopfunnel_plugin.funnel.model import load_funnel
from whopfunnel_plugin.service.host import Host
from whopfunnel_plugin.storage import store as s

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
FUNNEL_YAML = """\
id: loop
name: Loop
start: q1
timeout: 24h
escalation:
  - message: "Please choose one of the options above."
  - message: "Please reply with the number of an option."
  - message: "Still not one of the options; try the number."
  - message: "Let's start again."
    goto: again
blocks:
  again:
    message: "From the top."
    next: q1
  q1:
    message: "Hi {user_name}! Which topic interests you?"
    options:
      - {text: Trading, next: q2, synonyms: [stocks]}
      - {text: Crypto, next: q2, synonyms: [bitcoin]}
      - {text: "I'm done", next: done}
  q2:
    message: "And how experienced are you?"
    options:
      - {text: Beginner, next: q1, synonyms: [new]}
      - {text: Advanced, next: q1, synonyms: [pro]}
      - {text: "I'm done", next: done}
  done:
    type: end
    message: "Bye!"
"""
VALID = ["1", "2", "second", "the first one", "2", "1"]
INVALID = ["hmm?", "what do you mean", "42", "lol"]


def reply_stream(rng: random.Random, count: int, members: int, tenants: int):
    """(experience_id, user_id, text, valid) for `count` replies to random members."""
    for _ in range(count):
        i = rng.randrange(members)
        valid = rng.random() < 0.75
        text = rng.choice(VALID if valid else INVALID)
        yield f"exp_{i % tenants}", f"user_{i}", text, valid


# -- the raw sqlite3 baseline -------------------------------------------------------------

class RawBaseline:
    """The same storage work per reply with hand-written SQL on the real schema.

    `spec`: what SPEC §11 names: find the conversation, version-checked update, one
    interaction row, one outbox row, one commit per reply (or per `group` replies).
    `parity`: also what the Host does beyond that: the duplicate-message check, the inbound
    message row, a `visits` row per block entered (when the schema has that table), and as
    many outbox rows as the engine sends (2 for a reprompt).
    """

    def __init__(self, path: str, members: int, tenants: int):
        store = s.Store(f"sqlite:///{path}")
        store.upgrade()
        store.close()
        self.db = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=wal", "synchronous=normal", "busy_timeout=30000", "foreign_keys=1"):
            self.db.execute(f"PRAGMA {pragma}")
        self.ts = T0.replace(tzinfo=None)
        self.visits = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'visits'").fetchone() is not None
        fv_ids = []
        for t in range(tenants):
            cur = self.db.execute(
                "INSERT INTO funnels (experience_id, funnel_id, version, definition, created_at)"
                " VALUES (?, 'loop', 'v1', '{}', ?)", (f"exp_{t}", self.ts))
            fv_ids.append(cur.lastrowid)
        self.db.execute("BEGIN")
        expires = self.ts + timedelta(hours=24)
        self.db.executemany(
            "INSERT INTO conversations (experience_id, user_id, active_user, funnel_version_id,"
            " funnel_id, block, status, invalid_count, variables, owner_notified, reminder_sent,"
            " started_at, last_activity, expires_at, revision) VALUES"
            " (?, ?, ?, ?, 'loop', 'q1', 'active', 0, '{}', 0, 0, ?, ?, ?, 0)",
            ((f"exp_{i % tenants}", f"user_{i}", f"user_{i}", fv_ids[i % tenants],
              self.ts, self.ts, expires) for i in range(members)))
        self.db.execute("COMMIT")

    def run(self, stream, parity: bool, group: int = 1) -> tuple[int, float]:
        db, n, pending = self.db, 0, 0
        now = self.ts
        start = time.perf_counter()
        for exp, user, text, valid in stream:
            now += timedelta(milliseconds=1)
            if pending == 0:
                db.execute("BEGIN IMMEDIATE")
            msg_id = None
            if parity:
                wid = uuid.uuid4().hex
                dup = db.execute("SELECT 1 FROM messages WHERE whop_message_id = ? AND direction = 'in'"
                                 " LIMIT 1", (wid,)).fetchone()
                assert dup is None
            row = db.execute(
                "SELECT id, block, invalid_count, variables, revision FROM conversations"
                " WHERE experience_id = ? AND active_user = ?", (exp, user)).fetchone()
            conv_id, block, invalid, variables, revision = row
            if parity:
                msg_id = db.execute(
                    "INSERT INTO messages (experience_id, conversation_id, direction, user_id,"
                    " whop_message_id, text, status, recipient, attempts, created_at)"
                    " VALUES (?, ?, 'in', ?, ?, ?, 'received', 'member', 0, ?)",
                    (exp, conv_id, user, wid, text, now)).lastrowid
            new_block = ("q2" if block == "q1" else "q1") if valid else block
            new_invalid = 0 if valid else (invalid + 1) % 4
            variables = json.dumps(json.loads(variables))
            updated = db.execute(
                "UPDATE conversations SET block = ?, invalid_count = ?, variables = ?, last_activity = ?,"
                " expires_at = ?, revision = ? WHERE id = ? AND revision = ?",
                (new_block, new_invalid, variables, now, now + timedelta(hours=24), revision + 1,
                 conv_id, revision)).rowcount
            assert updated == 1
            db.execute(
                "INSERT INTO interactions (experience_id, conversation_id, message_id, funnel_id, block,"
                " text, classification, option_index, attempt, action, how, created_at)"
                " VALUES (?, ?, ?, 'loop', ?, ?, ?, ?, ?, ?, ?, ?)",
                (exp, conv_id, msg_id, block, text, "valid" if valid else "invalid",
                 0 if valid else None, 0 if valid else new_invalid, None if valid else "reprompt",
                 "number" if valid else "", now))
            if parity and self.visits and new_invalid == 0:  # the Host records each block entered
                db.execute("INSERT INTO visits (experience_id, conversation_id, funnel_id, block, created_at)"
                           " VALUES (?, ?, 'loop', ?, ?)", (exp, conv_id, new_block, now))
            outbound = 1 if valid or not parity else 2
            db.executemany(
                "INSERT INTO messages (experience_id, conversation_id, direction, user_id, text, status,"
                " recipient, attempts, next_attempt_at, idempotency_key, created_at)"
                " VALUES (?, ?, 'out', ?, ?, 'pending', 'member', 0, ?, ?, ?)",
                [(exp, conv_id, user, "And how experienced are you?\n\n1. Beginner\n2. Advanced",
                  now, uuid.uuid4().hex, now) for _ in range(outbound)])
            pending += 1
            n += 1
            if pending >= group:
                db.execute("COMMIT")
                pending = 0
        if pending:
            db.execute("COMMIT")
        return n, time.perf_counter() - start

    def close(self) -> None:
        self.db.close()


# -- the Host -----------------------------------------------------------------------------

def make_host(url: str, funnel, members: int, tenants: int) -> tuple[s.Store, Host, FixedClock, float]:
    store = s.Store(url)
    store.upgrade()
    clock = FixedClock(T0)
    host = Host(store, {"loop": funnel}, clock=clock)
    start = time.perf_counter()
    for i in range(members):
        outcome = host.join(MemberJoined(experience_id=f"exp_{i % tenants}", user_id=f"user_{i}",
                                         user_name=f"Member {i}"))
        assert outcome.status == "started", outcome.status
    return store, host, clock, time.perf_counter() - start


class Replier:
    def __init__(self, host: Host, clock: FixedClock):
        self.host, self.clock, self.seq = host, clock, 0
        self.statuses: dict[str, int] = {}

    def run(self, stream) -> tuple[int, float]:
        host, clock, n = self.host, self.clock, 0
        start = time.perf_counter()
        for exp, user, text, _ in stream:
            clock.advance(0.001)
            self.seq += 1
            outcome = host.message(MessageReceived(experience_id=exp, user_id=user,
                                                   message_id=f"msg_{self.seq}", text=text))
            self.statuses[outcome.status] = self.statuses.get(outcome.status, 0) + 1
            n += 1
        return n, time.perf_counter() - start


def count_statements(replier: Replier, stream) -> tuple[float, dict[str, int]]:
    recorder = StatementRecorder()
    with recorder.recording():
        n, _ = replier.run(stream)
    kinds: dict[str, int] = {}
    for sql, _ in recorder.statements:
        word = sql.split(None, 1)[0].upper()
        kinds[word] = kinds.get(word, 0) + 1
    return len(recorder.statements) / n, {k: round(v / n, 2) for k, v in kinds.items()}


def sqlite_run(args, funnel, tmp: Path) -> None:
    rng = random.Random(args.seed)
    spec_rate = raw_baselines(args, rng, tmp) if args.raw_replies else None
    host_run(args, rng, funnel, tmp, spec_rate)


def raw_baselines(args, rng: random.Random, tmp: Path) -> float:
    print("\nraw sqlite3 baseline (WAL, synchronous=NORMAL, same schema, BEGIN IMMEDIATE ... COMMIT)")
    raw = RawBaseline(str(tmp / "raw.db"), args.conversations, args.tenants)
    raw.run(reply_stream(rng, 2000, args.conversations, args.tenants), parity=False)  # warm up
    variants = (("spec work, 1 commit/reply", False, 1),
                ("spec work, 100 replies/commit", False, 100),
                ("Host-parity work, 1 commit/reply", True, 1))
    rates: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    per_round = max(1, args.raw_replies // args.raw_rounds)
    for _ in range(args.raw_rounds):  # interleaved rounds: disk and neighbour noise hit all alike
        for label, parity, group in variants:
            n, took = raw.run(reply_stream(rng, per_round, args.conversations, args.tenants),
                              parity=parity, group=group)
            rates[label].append(n / took)
    for label, values in rates.items():
        med = statistics.median(values)
        print(f"  {label:<34} median {med:7,.0f} replies/s ({1e6 / med:6.1f} us per reply); "
              f"rounds: {', '.join(f'{v:,.0f}' for v in values)}")
    raw.close()
    return statistics.median(rates["spec work, 1 commit/reply"])


def host_run(args, rng: random.Random, funnel, tmp: Path, spec_rate: float | None) -> None:
    print(f"\nHost.message on SQLite (WAL): {args.conversations:,} active conversations, "
          f"{args.tenants} tenants")
    store, host, clock, join_s = make_host(f"sqlite:///{tmp / 'host.db'}", funnel, args.conversations,
                                           args.tenants)
    print(f"  setup: {args.conversations:,} Host.join calls in {join_s:.1f}s "
          f"({args.conversations / join_s:,.0f} joins/s)")
    replier = Replier(host, clock)
    replier.run(reply_stream(rng, 1000, args.conversations, args.tenants))  # warm up
    per_reply, kinds = count_statements(replier, reply_stream(rng, 500, args.conversations, args.tenants))
    print(f"  statements per reply: {per_reply:.2f} {kinds} + BEGIN IMMEDIATE/COMMIT")
    gc.collect()
    rss0, objs0 = rss_mb(), len(gc.get_objects())
    print(f"  before: rss {rss0:.1f} MB, {objs0:,} gc-tracked objects")
    total_n, total_t, window = 0, 0.0, args.window
    rates = []
    while total_n < args.replies:
        n, took = replier.run(reply_stream(rng, min(window, args.replies - total_n),
                                           args.conversations, args.tenants))
        total_n += n
        total_t += took
        rates.append(n / took)
        print(f"  replies {total_n:>8,}: {n / took:7,.0f} replies/s in this window, rss {rss_mb():6.1f} MB")
    gc.collect()
    rss1, objs1 = rss_mb(), len(gc.get_objects())
    rate = total_n / total_t if total_t else 0.0
    print(f"  after:  rss {rss1:.1f} MB ({rss1 - rss0:+.1f} MB), {objs1:,} gc-tracked objects "
          f"({objs1 - objs0:+,}); outcomes {replier.statuses}")
    stored = s.MessageRow.select().count()
    print(f"  rows now: messages {stored:,}, interactions {s.InteractionRow.select().count():,}")
    print(f"\nHost.message: {rate:,.0f} replies/s ({total_t / max(total_n, 1) * 1e6:.0f} us per reply) "
          f"over {total_n:,} replies")
    if spec_rate and rate:
        ratio = rate / spec_rate
        print(f"raw sqlite3 (spec work, 1 commit/reply): {spec_rate:,.0f} replies/s")
        verdict = ("MET" if ratio >= 0.5
                   else f"MISSED (need {0.5 * spec_rate:,.0f}/s, {0.5 / ratio:.1f}x short)")
        print(f"ratio Host / raw = {ratio:.3f}x  -- SPEC target >= 0.5x: {verdict}")
    if args.profile:
        print(f"\ncProfile of {args.profile_replies:,} Host.message calls (top {args.profile} by tottime):")
        stream = list(reply_stream(rng, args.profile_replies, args.conversations, args.tenants))
        print(profile(lambda: replier.run(stream), top=args.profile))
        print(f"cProfile, same run, top {args.profile} by cumulative time:")
        print(profile(lambda: replier.run(list(reply_stream(rng, args.profile_replies, args.conversations,
                                                             args.tenants))),
                      top=args.profile, sort="cumtime"))
    store.close()


def _pg_worker(url: str, funnel, args, seed: int, wid: int, replies: int, queue) -> None:
    """One worker process: its own connection and Host, replies to random members."""
    store = s.Store(url)
    clock = FixedClock(T0 + timedelta(hours=1))
    replier = Replier(Host(store, {"loop": funnel}, clock=clock), clock)
    replier.seq = (wid + 1) * 10_000_000  # message ids unique across workers
    rng = random.Random(seed)
    queue.put(("ready", wid))
    n, took = replier.run(reply_stream(rng, replies, args.pg_conversations, args.tenants))
    store.close()
    queue.put((n, took))


def pg_workers(url: str, funnel, args, workers: int, seed: int) -> float:
    """Replies/s of `workers` processes together (wall clock from first start to last finish)."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_pg_worker, args=(url, funnel, args, seed + w, w, args.pg_replies, queue))
             for w in range(workers)]
    for proc in procs:
        proc.start()
    for _ in procs:
        queue.get()  # every worker connected
    start = time.perf_counter()
    total = sum(queue.get()[0] for _ in procs)
    took = time.perf_counter() - start
    for proc in procs:
        proc.join()
    return total / took


def pg_run(args, funnel) -> None:
    rng = random.Random(args.seed + 1)
    with postgres_database() as url:
        print(f"\nHost.message on PostgreSQL ({s.redact_url(url)}), {args.pg_conversations:,} conversations")
        store, host, clock, join_s = make_host(url, funnel, args.pg_conversations, args.tenants)
        print(f"  setup: {args.pg_conversations:,} joins in {join_s:.1f}s")
        replier = Replier(host, clock)
        replier.run(reply_stream(rng, 500, args.pg_conversations, args.tenants))
        per_reply, kinds = count_statements(replier, reply_stream(rng, 300, args.pg_conversations,
                                                                  args.tenants))
        print(f"  statements per reply: {per_reply:.2f} {kinds}; with BEGIN and COMMIT that is "
              f"{per_reply + 2:.0f} round trips -- SPEC target <= 2")
        n, took = replier.run(reply_stream(rng, args.pg_replies, args.pg_conversations, args.tenants))
        print(f"  one process, in-process: {n / took:,.0f} replies/s ({took / n * 1e6:.0f} us per reply) "
              f"over {n:,}")
        store.close()
        if args.pg_workers > 1:
            one = pg_workers(url, funnel, args, 1, args.seed + 100)
            many = pg_workers(url, funnel, args, args.pg_workers, args.seed + 200)
            verdict = "MET" if many >= 2 * one else f"MISSED ({many / one:.2f}x)"
            print(f"  worker processes ({args.pg_replies:,} replies each): 1 -> {one:,.0f} replies/s, "
                  f"{args.pg_workers} -> {many:,.0f} replies/s = {many / one:.2f}x "
                  f"-- SPEC target {args.pg_workers} workers >= 2x one: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=10_000, help="active conversations (10000)")
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--replies", type=int, default=40_000,
                        help="Host replies measured (40000; 100000 for the memory run takes ~4 min)")
    parser.add_argument("--window", type=int, default=10_000, help="replies per progress line")
    parser.add_argument("--raw-replies", type=int, default=30_000,
                        help="replies per raw baseline run; 0 skips the baselines")
    parser.add_argument("--raw-rounds", type=int, default=3, help="interleaved rounds per raw variant")
    parser.add_argument("--tmpdir", default=None,
                        help="where the temporary SQLite files go (default: the system temp dir)")
    parser.add_argument("--profile", type=int, default=0, metavar="TOP",
                        help="cProfile some Host replies and print the TOP functions")
    parser.add_argument("--profile-replies", type=int, default=3000)
    parser.add_argument("--db", choices=("sqlite", "pg", "both"), default="sqlite",
                        help="sqlite (default), pg (a temporary PostgreSQL database) or both")
    parser.add_argument("--pg-conversations", type=int, default=2000)
    parser.add_argument("--pg-replies", type=int, default=3000, help="replies per PG run (and per worker)")
    parser.add_argument("--pg-workers", type=int, default=4, help="worker processes for the PG scaling run")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with temp_dir(parent=args.tmpdir) as tmp:
        path = tmp / "loop.yaml"
        path.write_text(FUNNEL_YAML)
        funnel = load_funnel(path)
        if args.db in ("sqlite", "both"):
            sqlite_run(args, funnel, tmp)
        if args.db in ("pg", "both"):
            pg_run(args, funnel)
    print(f"\npeak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
