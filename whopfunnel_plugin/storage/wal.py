"""SQLite's write-ahead log, checkpointed by a background job instead of by commits.

By default the commit that takes the WAL past 1,000 pages copies it back into the
database, and every write queued behind that commit waits tens of milliseconds for it.
`whopfunnel serve` turns that off and checkpoints from its job thread every second,
passively: writers go on meanwhile.

A passive checkpoint alone does not bound the file. SQLite starts the WAL over only when
a checkpoint has caught up with every write before the next write begins, and no reader
is still in the WAL; under writes that follow each other closely that may never happen,
and the WAL grows by every page written for as long as they go on. Once it holds
`restart_frames` frames, the checkpoint therefore catches up once more with this
process's writers held back, by `wal_checkpoint(RESTART)`: only the frames written since
the passive pass are left to copy, and the hold costs about two fsyncs (0.2-0.3 ms on
the benchmark machine's disk). The next write then starts the WAL over, reusing the
file from its start. The file is not cut back (`journal_size_limit`): the commit that
starts the WAL over would pay for the truncation, and under the webhook benchmark that
put the p99 latency at 56-59 ms instead of 20-24 ms. Its size stays what it reached
between two checkpoint runs.

A reader still in an older snapshot, or another process's write, makes that step give up
after 20 ms; it is tried again after 2, 4, 8, ... up to 64 calls, so a reader that stays
(a long report, a backup) costs this process's writers 20 ms now and then, not every
second.
"""

from __future__ import annotations

from .database import SQLITE_BUSY_TIMEOUT_MS

RESTART_FRAMES = 8192  # 32 MiB of 4 KiB pages
HOLD_MS = 20  # the longest the held step waits for a reader or another process
MAX_BACKOFF = 64  # calls skipped at most after the held step found the WAL busy


class Checkpoints:
    """The checkpoint policy of one SQLite store."""

    def __init__(self, store):
        self.store = store
        self.restart_frames = RESTART_FRAMES
        self.held = 0  # held steps run, and how many of them found the WAL busy
        self.busy = 0
        self._skip = 0
        self._streak = 0
        self._restarted: int | None = None  # the WAL's frames at the last restart

    def defer(self) -> None:
        """Commits stop checkpointing; `run()` must be called instead."""
        db = self.store.db
        db._pragmas = [*[(k, v) for k, v in db._pragmas if k != "wal_autocheckpoint"],
                       ("wal_autocheckpoint", 0)]
        if not db.is_closed():
            db.execute_sql("PRAGMA wal_autocheckpoint = 0")

    def run(self) -> int:
        """A passive checkpoint, then the held step when it is due; the frames the WAL
        held (0 for a database without one)."""
        store, db = self.store, self.store.db
        (_, frames, _), = store.read(
            lambda: db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall())
        if frames < self.restart_frames or frames == self._restarted or store.group is None:
            return max(frames, 0)  # small, or no write since the last restart
        if self._skip:
            self._skip -= 1
            return frames
        self.held += 1
        busy = store.group.exclusive(lambda: store.read(lambda: _restart(db)))
        if busy:
            self.busy += 1
            self._streak += 1
            self._skip = min(2 ** self._streak, MAX_BACKOFF)
        else:
            self._streak, self._restarted = 0, frames
        return frames


def _restart(db) -> bool:
    """True when a reader or another process kept the WAL from being caught up."""
    db.execute_sql(f"PRAGMA busy_timeout = {HOLD_MS}")
    try:  # RESTART, not TRUNCATE: cutting a large file to nothing took up to 90 ms
        (busy, _, _), = db.execute_sql("PRAGMA wal_checkpoint(RESTART)").fetchall()
    finally:
        db.execute_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    return bool(busy)
