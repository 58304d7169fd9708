"""SQLite's WAL stays bounded under steady writes when checkpoints are left to the
server's job (`whopfunnel serve` defers them off the commit path, then calls
`Store.checkpoint()` every second)."""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import datetime, timezone

from whopfunnel_plugin.events import MemberJoined
from whopfunnel_plugin.funnel.model import load_funnel
from whopfunnel_plugin.service.host import Host

from ..conftest import FUNNELS

ONBOARDING = load_funnel(FUNNELS / "onboarding.yaml")
JOINS = 2000


def wal_bytes(store) -> int:
    path = store.url.removeprefix("sqlite:///") + "-wal"
    return os.path.getsize(path) if os.path.exists(path) else 0


def test_the_wal_starts_over_while_writes_never_pause(sqlite_store, clock):
    store = sqlite_store
    store.defer_checkpoints()
    store.checkpoints.restart_frames = 100  # 400 KiB: small, so a short test shows the bound
    host = Host(store, {"onboarding": ONBOARDING}, clock=clock)
    failed = []

    def join_steadily():
        try:
            for i in range(JOINS):
                host.join(MemberJoined(experience_id="exp_1", user_id=f"u{i}"))
        except Exception as exc:  # pragma: no cover - reported below
            failed.append(exc)

    writer = threading.Thread(target=join_steadily)
    writer.start()
    frames, restarts = 0, 0
    while writer.is_alive():
        held = store.checkpoint()  # the frames the WAL held: fewer than last time = restarted
        restarts += held < frames
        frames = held
        writer.join(0.01)
    assert failed == []
    assert len(store.tenant("exp_1").conversations()) == JOINS  # nothing lost meanwhile
    # Left alone, the WAL holds every page the joins wrote (over 100 MiB here, growing
    # with every write). Started over past 100 frames, the file stays within what the
    # writer adds between two checkpoints (a few MiB).
    assert restarts > 0
    assert wal_bytes(store) < 16 * 2**20, f"the WAL reached {wal_bytes(store) / 2**20:.1f} MiB"


def test_a_reader_in_an_old_snapshot_only_postpones_the_restart(sqlite_store, clock):
    store = sqlite_store
    store.defer_checkpoints()
    store.checkpoints.restart_frames = 10
    host = Host(store, {"onboarding": ONBOARDING}, clock=clock)
    host.join(MemberJoined(experience_id="exp_1", user_id="first"))
    reader = sqlite3.connect(store.url.removeprefix("sqlite:///"), isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM conversations").fetchone() == (1,)
    for i in range(50):
        host.join(MemberJoined(experience_id="exp_1", user_id=f"u{i}"))

    held = store.checkpoint()  # the reader still needs the WAL: the held step gives up
    assert (store.checkpoints.held, store.checkpoints.busy) == (1, 1)
    host.join(MemberJoined(experience_id="exp_1", user_id="meanwhile"))
    assert store.checkpoint() > held  # the WAL could not start over ...
    store.checkpoint()
    assert store.checkpoints.held == 1  # ... and the next two calls leave the writers alone
    reader.execute("COMMIT")
    reader.close()

    store.checkpoint()  # the reader is gone: caught up, and the next write starts over
    assert (store.checkpoints.held, store.checkpoints.busy) == (2, 1)
    host.join(MemberJoined(experience_id="exp_1", user_id="after"))
    assert store.checkpoint() < held
    assert len(store.tenant("exp_1").conversations()) == 53


def test_a_writer_that_never_pauses_cannot_keep_the_checkpoint_waiting(sqlite_store):
    store = sqlite_store
    store.defer_checkpoints()
    store.checkpoints.restart_frames = 1
    deliveries = store.models.delivery
    when = datetime(2026, 3, 1, tzinfo=timezone.utc)
    writes, stop = [0], threading.Event()

    def write_back_to_back():
        while not stop.is_set():
            store.transaction(lambda: deliveries.insert(webhook_id=f"w{writes[0]}",
                                                        received_at=when).execute())
            writes[0] += 1

    writer = threading.Thread(target=write_back_to_back)
    writer.start()
    while writes[0] < 100:
        writer.join(0.01)
    checkpointing = threading.Thread(target=store.checkpoint)
    checkpointing.start()
    checkpointing.join(60)  # the writer goes on all this time
    finished_while_writing = not checkpointing.is_alive()
    stop.set()
    writer.join()
    checkpointing.join()
    assert finished_while_writing
    assert store.checkpoints.held == 1
