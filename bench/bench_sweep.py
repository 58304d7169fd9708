"""Timeout sweep cost vs stored conversations (SPEC §11: O(expired), < 5 ms with nothing
expired among 1,000,000 stored, one indexed statement per batch).

    python bench/bench_sweep.py                      # 100,000 stored, checkpoints 10k / 100k
    python bench/bench_sweep.py --stored 1000000     # checkpoints 10k / 100k / 1M
    python bench/bench_sweep.py --pg                 # the same on a temporary PostgreSQL database

Rows are bulk-inserted with `insert_many` (not through the Host) into the real schema
(`Store(url).upgrade()`); the sweep is the real `Host(store, {}, clock=FixedClock).sweep(now)`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import time
from datetime import datetime, timedelta, timezone

from _common import (
    ROOT,
    StatementRecorder,
    machine,
    peak_rss_mb,
    postgres_database,
    profile,
    rss_mb,
    summary,
    temp_dir,
)

from whopfunnel_plugin.clock import FixedClock
from whopfunnel_plugin.funnel.model import load_funnel
from whopfunnel_plugin.service.host import Host
from whopfunnel_plugin.storage import store as s

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)  # "now" for the nothing-expired sweeps
FIELDS = [
    s.ConversationRow.experience_id, s.ConversationRow.user_id, s.ConversationRow.active_user,
    s.ConversationRow.funnel_version, s.ConversationRow.funnel_id, s.ConversationRow.block,
    s.ConversationRow.status, s.ConversationRow.invalid_count, s.ConversationRow.variables,
    s.ConversationRow.owner_notified, s.ConversationRow.reminder_sent,
    s.ConversationRow.started_at, s.ConversationRow.last_activity, s.ConversationRow.expires_at,
    s.ConversationRow.revision,
]


def checkpoints(stored: int) -> list[int]:
    points, n = [], 10_000
    while n < stored:
        points.append(n)
        n *= 10
    return points + [stored]


class Builder:
    """Appends conversations to the store in chunks; the first rows are the expiring batches."""

    def __init__(self, store: s.Store, versions: list[s.FunnelVersion], expired: list[int],
                 probe: int, chunk: int, seed: int):
        self.store, self.versions, self.chunk = store, versions, chunk
        self.rng = random.Random(seed)
        self.count = 0
        # batch k (k = 1..) expires in (T0 + (k-1) min, T0 + k min]; the probe batch after them
        self.batches = [(n, T0 + timedelta(minutes=k)) for k, n in enumerate([*expired, probe], 1)]
        self.special = sum(n for n, _ in self.batches)
        self.insert_seconds = 0.0

    def _expiry(self, i: int) -> datetime:
        start = 0
        for n, until in self.batches:
            if i < start + n:
                return until - timedelta(seconds=self.rng.uniform(0, 59))
            start += n
        # everyone else: last active within the past 23 h, so expiring 1 h .. 24 h from now
        return T0 + timedelta(seconds=self.rng.uniform(3600, 24 * 3600))

    def grow_to(self, total: int) -> None:
        start = time.perf_counter()
        while self.count < total:
            n = min(self.chunk, total - self.count)
            rows = []
            for i in range(self.count, self.count + n):
                version = self.versions[i % len(self.versions)]
                expires = self._expiry(i)
                last = expires - timedelta(hours=24)
                user = f"user_{i}"
                rows.append((version.experience_id, user, user, version.id, version.funnel_id,
                             "welcome", "active", 0, "{}", False, False, last, last, expires, 0))
            with self.store.atomic():
                s.ConversationRow.insert_many(rows, fields=FIELDS).execute()
            self.count += n
        self.insert_seconds += time.perf_counter() - start


def time_noop_sweeps(host: Host, now: datetime, repeat: int) -> tuple[list[float], int]:
    samples, ended = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = host.sweep(now)
        samples.append(time.perf_counter() - start)
        ended += result.total
    return samples, ended


def explain(store: s.Store, sql: str, params: tuple) -> list[str]:
    if store.engine == "sqlite":
        rows = store.db.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()
        return [f"{r[0]}|{r[1]}|{r[3]}" for r in rows]
    rows = store.db.execute_sql("EXPLAIN ANALYZE " + sql, params).fetchall()
    return [r[0] for r in rows]


def db_size_mb(store: s.Store, path: str | None) -> float:
    if path:
        return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p)) / 2**20
    (size,) = store.db.execute_sql("SELECT pg_database_size(current_database())").fetchone()
    return size / 2**20


def run(url: str, path: str | None, args) -> None:
    print(f"machine: {machine()}")
    print(f"database: {s.redact_url(url)}")
    store = s.Store(url)
    store.upgrade()
    funnel = load_funnel(ROOT / "funnels" / "onboarding.yaml")
    versions = [store.tenant(f"exp_{t}").funnel_version(funnel, T0) for t in range(args.tenants)]
    expired = [int(x) for x in args.expired.split(",") if x.strip()]
    probe = 100  # a small extra batch swept under the statement recorder
    if sum(expired) + probe > args.stored:
        raise SystemExit("--expired batches (+100 probe rows) must fit in --stored")
    builder = Builder(store, versions, expired, probe, args.chunk, args.seed)
    host = Host(store, {}, clock=FixedClock(T0), batch_size=args.batch_size)
    print(f"rss at start: {rss_mb():.1f} MB")

    print("\n(a) sweep with NOTHING expired")
    flat = []
    for point in checkpoints(args.stored):
        builder.grow_to(point)
        if store.engine == "postgres":
            store.db.execute_sql("ANALYZE conversations")
        samples, ended = time_noop_sweeps(host, T0, args.repeat)
        assert ended == 0, f"a nothing-expired sweep ended {ended} conversations"
        flat.append((point, samples))
        print(f"  stored {point:>9,}: sweep {summary(samples)}   "
              f"[built in {builder.insert_seconds:.1f}s total, db {db_size_mb(store, path):.0f} MB, "
              f"rss {rss_mb():.0f} MB]")
    base = sorted(flat[0][1])[len(flat[0][1]) // 2]
    top = sorted(flat[-1][1])[len(flat[-1][1]) // 2]
    print(f"  median at {flat[-1][0]:,} / median at {flat[0][0]:,} stored = {top / base:.2f}x "
          f"(flat means ~1x); SPEC target < 5 ms at 1,000,000 stored")

    print("\n(c) statements of one nothing-expired sweep, with their query plans")
    recorder = StatementRecorder()
    with recorder.recording():
        host.sweep(T0)
    for sql, params in recorder.statements:
        print(f"  SQL: {sql}")
        print(f"       params={params}")
        if sql.lstrip().upper().startswith("SELECT"):
            for line in explain(store, sql, params):
                print(f"       plan: {line}")
            timings = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                store.db.execute_sql(sql, params).fetchall()
                timings.append(time.perf_counter() - start)
            print(f"       this statement alone, SQL already built: {summary(timings)}")
    print(f"  {len(recorder.statements)} statements (+ BEGIN/COMMIT of the batch transaction)")

    print("\n(b) sweep with expired conversations (inline hook calls: on_timeout + on_conversation_end)")
    for k, n in enumerate(expired, 1):
        now = T0 + timedelta(minutes=k)
        start = time.perf_counter()
        result = host.sweep(now)
        took = time.perf_counter() - start
        assert result.total == n, f"expected {n} ended, got {result.total}"
        print(f"  {n:>6,} expired of {builder.count:,}: {took * 1e3:9.1f} ms total, "
              f"{took / n * 1e6:7.1f} us per conversation, {n / took:8.0f} conversations/s")
    now = T0 + timedelta(minutes=len(expired) + 1)
    with recorder.recording():
        recorder.statements.clear()
        result = host.sweep(now)
    assert result.total == probe
    kinds: dict[str, int] = {}
    for sql, _ in recorder.statements:
        word = sql.split(None, 1)[0].upper()
        kinds[word] = kinds.get(word, 0) + 1
    print(f"  statements for a {probe}-conversation sweep: {len(recorder.statements)} "
          f"({len(recorder.statements) / probe:.1f} per conversation: {kinds})")
    if args.profile:
        # one more expired batch, profiled, to show where the per-conversation time goes
        extra = 2000
        rows = s.ConversationRow.update(expires_at=now + timedelta(seconds=30)).where(
            s.ConversationRow.id.in_(
                s.ConversationRow.select(s.ConversationRow.id).where(
                    s.ConversationRow.status == "active"
                ).order_by(s.ConversationRow.id).limit(extra))).execute()
        text = profile(lambda: host.sweep(now + timedelta(minutes=1)), top=args.profile, sort="cumtime")
        print(f"\n  cProfile of a sweep ending {rows} conversations (top {args.profile} by cumulative time):")
        print(text)

    samples, ended = time_noop_sweeps(host, now + timedelta(seconds=1), args.repeat)
    assert ended == 0
    print(f"\n(a') nothing-expired sweep again after the expired ones were ended: {summary(samples)}")
    print(f"\npeak RSS: {peak_rss_mb():.0f} MB; rss now {rss_mb():.0f} MB; "
          f"rows {builder.count:,}; db {db_size_mb(store, path):.0f} MB")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stored", type=int, default=100_000, help="conversations stored (default 100000)")
    parser.add_argument("--expired", default="1000,10000",
                        help="comma-separated sizes of expired batches swept in turn (default 1000,10000)")
    parser.add_argument("--tenants", type=int, default=10, help="experiences the rows are spread over")
    parser.add_argument("--repeat", type=int, default=50, help="timed nothing-expired sweeps per checkpoint")
    parser.add_argument("--chunk", type=int, default=1000, help="rows per insert_many statement")
    parser.add_argument("--batch-size", type=int, default=500, help="Host batch_size (default 500)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pg", action="store_true", help="use a temporary PostgreSQL database")
    parser.add_argument("--profile", type=int, default=0, metavar="TOP",
                        help="also cProfile an extra 2,000-conversation sweep and print the TOP functions")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.pg:
            url, path = stack.enter_context(postgres_database()), None
        else:
            path = str(stack.enter_context(temp_dir()) / "sweep.db")
            url = f"sqlite:///{path}"
        run(url, path, args)


if __name__ == "__main__":
    main()
