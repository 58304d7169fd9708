"""The sweep: 10,000 expired among 1,000,000 stored, against one indexed UPDATE of the same
rows on a copy of the same database; and the sweep with nothing expired.

The database is made by the package (`whopfunnel db upgrade`), then one member per
tenant joins through the public API; those rows are the templates that a single
`INSERT ... SELECT` over a recursive counter copies to `stored` rows (every column
copied as is, except the member ids, which must differ, and `expires_at`: the first
`expired` rows keep the template's, the rest expire ten years later). Only the
`conversations` table and its `user_id`, `active_user`, `expires_at` and `experience_id`
columns are assumed; every other column follows the package's schema.

The sweep runs as `whopfunnel serve` runs it: `pm.runtime.host.sweep()` on a manager built
with `make_plugin_manager(..., clock=..., delivery="dispatcher")`, which ends the expired
conversations and owes their hook calls in a few set-based statements; the hooks job then
fires the owed calls (third-party code, one call each), timed on its own.

Both sides run with SQLite's checkpoints deferred, as `whopfunnel serve` runs (its
checkpoint job copies the WAL back into the database every second, off the commit path;
no checkpoint runs while either side is timed): a commit then costs what it costs a
served worker, on both sides. A second
floor does the UPDATE in the sweep's own batches (select up to `batch` ids, update them,
commit), so the cost of batching itself is on the page apart from whopfunnel's.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from _embedded import Clock, Embedded, cli
from _workload import TENANTS, user_id

FMT = "%Y-%m-%d %H:%M:%S.%f"
ENDED = ("status = 'ended', end_reason = 'timeout', active_user = NULL, ended_at = ?,"
         " revision = revision + 1")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


class SweepBench:
    def __init__(self, config: str, folder: str, stored: int, expired: int):
        self.config, self.folder = config, Path(folder)
        self.stored, self.expired = stored, expired
        self.base = self.folder / "sweep_base.db"
        start = time.perf_counter()
        cli(config, self.url(self.base), "db", "upgrade")
        members = Embedded(config, self.url(self.base), sends="accept")
        templates = [10**9 + t for t in range(TENANTS)]  # one member per tenant (user % 10 = tenant)
        for user in templates:
            members.join(user, 1)
        self.batch = members.pm.runtime.host.batch_size  # conversations per sweep transaction
        members.close()
        db = sqlite3.connect(self.base, isolation_level=None)
        columns = [row[1] for row in db.execute("PRAGMA table_info(conversations)")]
        bump = "(CAST(substr({0}, 1, 4) AS INTEGER) + 10) || substr({0}, 5)"
        later = bump.format("t.expires_at")
        exprs = {"user_id": "'bulk_' || seq.n", "active_user": "'bulk_' || seq.n",
                 "expires_at": f"CASE WHEN seq.n < {expired} THEN t.expires_at ELSE {later} END"}
        if "user_name" in columns:
            exprs["user_name"] = "'Bulk ' || seq.n"
        if "channel_id" in columns:
            exprs["channel_id"] = "'feed_bench_bulk_' || seq.n"
        names = [c for c in columns if c != "id"]
        select = ", ".join(exprs.get(c, f"t.{c}") for c in names)
        ids = ", ".join(f"'{user_id(u)}'" for u in templates)
        db.execute("BEGIN")
        db.execute(f"CREATE TEMP TABLE tmpl AS SELECT * FROM conversations WHERE user_id IN ({ids})")
        db.execute(
            f"INSERT INTO conversations ({', '.join(names)}) "
            "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq "
            f"WHERE n < {stored - TENANTS - 1}) "
            f"SELECT {select} FROM seq JOIN tmpl t ON t.experience_id = 'exp_' || (seq.n % {TENANTS})")
        db.execute(f"UPDATE conversations SET expires_at = {bump.format('expires_at')} "
                   f"WHERE user_id IN ({ids})")
        db.execute("COMMIT")
        self.count = db.execute("SELECT count(*) FROM conversations").fetchone()[0]
        due = db.execute("SELECT min(expires_at) FROM conversations WHERE status = 'active'").fetchone()[0]
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        self.due = _parse(due)
        self.build_seconds = time.perf_counter() - start
        self.size_mb = self.base.stat().st_size / 2**20

    @staticmethod
    def url(path: Path) -> str:
        return f"sqlite:///{path}"

    def info(self) -> dict:
        return {"stored": self.count, "batch": self.batch, "build_seconds": self.build_seconds,
                "size_mb": self.size_mb}

    def _copy(self, name: str) -> Path:
        target = self.folder / name
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        start = time.perf_counter()
        shutil.copyfile(self.base, target)
        self.copy_seconds = time.perf_counter() - start
        return target

    def nothing_expired(self, sweeps: int) -> list[float]:
        """`sweeps` sweeps a minute before anything expires (the database is not changed)."""
        pm = Embedded(self.config, self.url(self.base), clock=Clock(self.due - timedelta(minutes=1)))
        pm.sweeps(3)  # warm up: connections, prebuilt statements, the engine cache
        times = pm.sweeps(sweeps)
        pm.close()
        db = sqlite3.connect(self.base)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        return times

    def _floor_db(self, name: str) -> sqlite3.Connection:
        db = sqlite3.connect(self._copy(name), isolation_level=None)
        db.execute("PRAGMA journal_mode=wal")
        db.execute("PRAGMA synchronous=normal")
        db.execute("PRAGMA wal_autocheckpoint=0")  # as served: the checkpoint job copies it back
        return db

    def floor(self) -> dict:
        """One indexed UPDATE of the due rows, in one transaction, on a fresh copy."""
        db = self._floor_db("sweep_floor.db")
        now = (self.due + timedelta(minutes=1)).strftime(FMT)
        plan = " / ".join(r[-1] for r in db.execute(
            "EXPLAIN QUERY PLAN UPDATE conversations SET status = 'ended' WHERE status = 'active' "
            "AND expires_at <= ?", (now,)))
        start = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        count = db.execute(f"UPDATE conversations SET {ENDED} WHERE status = 'active' AND"
                           " expires_at <= ?", (now, now)).rowcount
        db.execute("COMMIT")
        took = time.perf_counter() - start
        db.close()
        return {"seconds": took, "ended": count, "plan": plan}

    def floor_batched(self) -> dict:
        """The same UPDATE in transactions of up to the sweep's batch of rows, as it batches."""
        batch = self.batch
        db = self._floor_db("sweep_floor.db")
        now = (self.due + timedelta(minutes=1)).strftime(FMT)
        count, start = 0, time.perf_counter()
        while True:
            db.execute("BEGIN IMMEDIATE")
            ids = [r[0] for r in db.execute(
                "SELECT id FROM conversations WHERE status = 'active' AND expires_at <= ?"
                " ORDER BY expires_at LIMIT ?", (now, batch))]
            if ids:
                count += db.execute(f"UPDATE conversations SET {ENDED} WHERE id IN"
                                    f" ({', '.join('?' * len(ids))})", (now, *ids)).rowcount
            db.execute("COMMIT")
            if len(ids) < batch:
                break
        took = time.perf_counter() - start
        db.close()
        return {"seconds": took, "ended": count}

    def sweep(self, profile: bool = False) -> dict:
        """`pm.runtime.host.sweep()` a minute after the due rows expired, on a fresh copy."""
        path = self._copy("sweep_wf.db")
        pm = Embedded(self.config, self.url(path), clock=Clock(self.due + timedelta(minutes=1)),
                      mode="dispatcher")
        pm.pm.runtime.store.defer_checkpoints()  # as `whopfunnel serve` runs it
        result = pm.profile_sweep() if profile else pm.sweep()
        if not profile:
            fired = pm.fire_due()
            result.update(hooks_seconds=fired["seconds"], hooks_fired=fired["fired"])
        pm.close()
        return result
