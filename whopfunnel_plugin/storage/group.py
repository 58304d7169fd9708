"""Group commit: writes that arrive together share one transaction.

On SQLite every commit costs a WAL write, and writers queue for one lock, so commits
are the limit under concurrency. Here a thread with a write to make either waits while
another thread commits, or, when no one is committing, becomes the committer: it takes
every write queued so far (its own included), runs them in one transaction, each in a
savepoint of its own, commits once, and wakes the waiters. A write that conflicts, is a
duplicate or fails is rolled back to its savepoint alone: it never fails the others.
Each write is acknowledged only after the commit that holds it; if that commit fails,
every write in it gets the error (nothing of it was stored).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

MAX_BATCH = 64  # writes per commit, at most: bounds how long a batch holds the lock


class _Job:
    __slots__ = ("run", "finished", "result", "error")

    def __init__(self, run: Callable[[], object]):
        self.run = run
        self.finished = False
        self.result = None
        self.error: BaseException | None = None


class GroupCommit:
    def __init__(self, transaction: Callable, savepoint: Callable, *, max_batch: int = MAX_BATCH):
        """`transaction(fn)` runs fn in one transaction (retrying lost lock races, replacing
        a dropped connection); `savepoint()` is a context manager for one write inside it."""
        self.transaction = transaction
        self.savepoint = savepoint
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: list[_Job] = []
        self._committing = False
        self._committer: int | None = None  # the thread holding the role, while one does
        self._exclusive_waiting = 0  # callers of exclusive() waiting: they go next
        self.commits = 0  # commits made, and the writes they held (for the benchmarks)
        self.writes = 0

    def run(self, fn: Callable[[], object]):
        """Run `fn` (a write) in a shared transaction; its result, or its exception."""
        job = _Job(fn)
        with self._cond:
            self._queue.append(job)
            while (self._committing or self._exclusive_waiting) and not job.finished:
                self._cond.wait()
            if not job.finished:
                self._take()
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
        if not job.finished:
            try:
                self._commit(batch)
            finally:
                self._release()
        if job.error is not None:
            raise job.error
        return job.result

    def exclusive(self, fn: Callable[[], object]):
        """Run `fn` (outside any transaction) while no write of this process runs: it
        waits for the commit under way, and goes before every write that arrives
        meanwhile (a thread writing back to back cannot keep it waiting)."""
        with self._cond:
            if self._committer == threading.get_ident():
                raise RuntimeError("exclusive() called while this thread commits")
            self._exclusive_waiting += 1
            try:
                while self._committing:
                    self._cond.wait()
            except BaseException:
                self._exclusive_waiting -= 1
                self._cond.notify_all()  # the writers held back for it may go
                raise
            self._exclusive_waiting -= 1
            self._take()
        try:
            return fn()
        finally:
            self._release()

    def _take(self) -> None:  # with self._cond held
        self._committing, self._committer = True, threading.get_ident()

    def _release(self) -> None:
        with self._cond:
            self._committing, self._committer = False, None
            self._cond.notify_all()

    def _commit(self, batch: list[_Job]) -> None:
        alone = len(batch) == 1

        def run_all():
            for job in batch:
                job.error = None
                try:
                    if alone:  # no savepoint needed: the transaction is the job's own
                        job.result = job.run()
                    else:
                        with self.savepoint():
                            job.result = job.run()
                except Exception as exc:  # noqa: BLE001 - handed to the job's own thread
                    if alone:
                        raise
                    job.error = exc

        try:
            self.transaction(run_all)
        except BaseException as exc:  # the commit failed: nothing of the batch is stored
            for job in batch:
                job.error = exc
        finally:
            self.commits += 1
            self.writes += len(batch)
            for job in batch:
                job.finished = True
