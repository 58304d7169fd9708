"""SQLite's write-ahead log, checkpointed by a background job instead of by commits.

By default the commit that takes the WAL past 1,000 pages copies it back into the
database, and every write queued behind that commit waits tens of milliseconds for it.
`whopfunnel serve` turns that off and checkpoints from its job thread every second,
passively: writers go on meanwhile.

A passive checkpoint alone does not bound the file. SQLite starts the WAL over only when
a checkpoint has caught up with every write *before the next write begins*; under steady
writes the next write has always begun, so the WAL would grow by every page written, for
as long as the writes go on. Once it holds `store.wal_restart_frames` frames, the
checkpoint therefore catches up once more with this process's writers held back (only
the frames written since the passive pass are left to copy; measured under the webhook
benchmark, the hold lasts well under a millisecond) and has the next write start the WAL
over. Readers still in an older snapshot get 100 ms to finish before that step gives up
until the next call; writers of other processes, the same. The file itself is cut back to
`journal_size_limit` (64 MiB) when the WAL starts over.
"""

from __future__ import annotations

from .database import SQLITE_BUSY_TIMEOUT_MS

RESTART_FRAMES = 8192  # 32 MiB of 4 KiB pages
HOLD_MS = 100  # the longest the held step waits for a reader or another process


def defer_checkpoints(store) -> None:
    if store.engine != "sqlite":
        return
    db = store.db
    db._pragmas = [*[(k, v) for k, v in db._pragmas if k != "wal_autocheckpoint"],
                   ("wal_autocheckpoint", 0)]
    if not db.is_closed():
        db.execute_sql("PRAGMA wal_autocheckpoint = 0")


def checkpoint(store) -> int:
    if store.engine != "sqlite":
        return 0
    db = store.db
    (_, frames, _), = store.read(
        lambda: db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall())
    if frames >= store.wal_restart_frames:
        store.group.exclusive(lambda: store.read(lambda: _restart(db)))
    return frames


def _restart(db) -> None:
    db.execute_sql(f"PRAGMA busy_timeout = {HOLD_MS}")
    try:  # RESTART, not TRUNCATE: cutting a large file to nothing took up to 90 ms
        db.execute_sql("PRAGMA wal_checkpoint(RESTART)").fetchall()
    finally:
        db.execute_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
