"""Periodic jobs on our own `schedule.Scheduler` (never the global one), in a thread.

Jobs never overlap: one thread runs them in turn. `wake()` runs pending work now
(the webhook handler calls it after committing new outbound messages). `stop()`
lets the job in flight finish before the thread ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import schedule

from ..errors import DatabaseUnavailable

log = logging.getLogger("whopfunnel.scheduler")
QUIET = 30.0  # seconds between repeats of "still waiting for the database"


class JobRunner:
    """`observe(name, seconds, result, failed)` hears of every run (the job metrics)."""

    def __init__(self, observe: Callable[..., None] | None = None) -> None:
        self.observe = observe
        self.scheduler = schedule.Scheduler()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._urgent: list[Callable[[], object]] = []
        self.failures = 0
        self._db_down_since: float | None = None
        self._db_last_said = 0.0
        self.monotonic = time.monotonic

    def every(self, seconds: float, name: str, job: Callable[[], object], urgent: bool = False):
        """Run `job` every `seconds`; `urgent` jobs also run on every wake()."""
        self.scheduler.every(max(seconds, 0.05)).seconds.do(self._guarded, name, job).tag(name)
        if urgent:
            self._urgent.append(lambda: self._guarded(name, job))

    def _guarded(self, name: str, job: Callable[[], object]) -> None:
        if self._stop.is_set():
            return  # stopping: the job in flight finishes, no further one starts
        started, result, failed = time.perf_counter(), None, False
        try:
            result = job()
        except DatabaseUnavailable as exc:  # transient: one line now and then, no traceback
            self.failures += 1
            failed = True
            now = self.monotonic()
            if self._db_down_since is None or now - self._db_last_said >= QUIET:
                log.warning("job %s waits for the database: %s", name, exc)
                self._db_last_said = now
            self._db_down_since = self._db_down_since or now
        except Exception:
            self.failures += 1
            failed = True
            log.exception("job %s failed; it runs again at its next turn", name)
        else:
            if self._db_down_since is not None:
                log.warning("the database is back after %.0fs; jobs resume",
                            self.monotonic() - self._db_down_since)
                self._db_down_since = None
        self._report(name, time.perf_counter() - started, result, failed)

    def _report(self, name: str, seconds: float, result, failed: bool) -> None:
        if self.observe is None:
            return
        try:
            self.observe(name, seconds, result, failed)
        except Exception:  # noqa: BLE001 - reporting must never stop the jobs
            log.exception("reporting job %s failed", name)

    def wake(self) -> None:
        self._wake.set()

    def run_all_now(self) -> None:
        self.scheduler.run_all()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="whopfunnel-jobs", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            idle = self.scheduler.idle_seconds
            woke = self._wake.wait(timeout=max(0.0, min(idle if idle is not None else 1.0, 1.0)))
            if self._stop.is_set():
                break
            if woke:
                self._wake.clear()
                for job in self._urgent:
                    job()
            self.scheduler.run_pending()

    @property
    def stopping(self) -> threading.Event:
        """Set once stop() is called: long jobs check it between units of work."""
        return self._stop

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
