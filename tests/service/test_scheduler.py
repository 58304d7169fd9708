"""The job thread: intervals, wake-ups, failing jobs, and a stop that lets work finish.

Waits below are generous upper bounds for something that must happen, never a measure of
how fast it happened.
"""

from __future__ import annotations

import threading
import time

import pytest

from whopfunnel_plugin.service.scheduler import JobRunner

WAIT = 10.0


class Counter:
    """A job that counts its runs and signals once it ran `enough` times."""

    def __init__(self, enough=1, fail=False):
        self.runs = 0
        self.enough = enough
        self.fail = fail
        self.done = threading.Event()

    def __call__(self):
        self.runs += 1
        if self.runs >= self.enough:
            self.done.set()
        if self.fail:
            raise RuntimeError(f"job failed on run {self.runs}")


@pytest.fixture
def runner():
    jobs = JobRunner()
    yield jobs
    jobs.stop(timeout=WAIT)


def test_jobs_run_at_their_interval(runner):
    fast, slow = Counter(enough=3), Counter()
    runner.every(0.05, "fast", fast)
    runner.every(3600, "slow", slow)
    runner.start()
    assert fast.done.wait(WAIT), "a 50 ms job did not run three times"
    assert slow.runs == 0  # its hour has not come
    runner.stop(timeout=WAIT)
    after = fast.runs
    assert after >= 3
    time.sleep(0.2)
    assert fast.runs == after  # nothing runs once stopped


def test_wake_runs_the_urgent_jobs_at_once(runner):
    urgent, routine = Counter(), Counter()
    runner.every(3600, "outbox", urgent, urgent=True)
    runner.every(3600, "sweep", routine)
    runner.start()
    runner.wake()
    assert urgent.done.wait(WAIT), "wake() did not run the urgent job"
    assert routine.runs == 0
    urgent.done.clear()
    urgent.enough = 2
    runner.wake()
    assert urgent.done.wait(WAIT), "a second wake() did not run the urgent job again"
    assert (urgent.runs, routine.runs) == (2, 0)


def test_a_failing_job_is_counted_and_does_not_stop_the_others(runner, caplog):
    broken, healthy = Counter(enough=2, fail=True), Counter(enough=3)
    runner.every(0.05, "broken", broken)
    runner.every(0.05, "healthy", healthy)
    runner.start()
    assert broken.done.wait(WAIT) and healthy.done.wait(WAIT)
    assert runner._thread.is_alive()
    runner.stop(timeout=WAIT)
    assert runner.failures == broken.runs >= 2
    assert healthy.runs >= 3
    assert "job broken failed" in caplog.text


def test_a_failing_urgent_job_is_counted_too(runner):
    broken = Counter(fail=True)
    runner.every(3600, "outbox", broken, urgent=True)
    runner.start()
    runner.wake()
    assert broken.done.wait(WAIT)
    runner.stop(timeout=WAIT)
    assert runner.failures == 1
    assert not runner._thread.is_alive()


def test_run_all_now_runs_every_job_once(runner):
    a, b = Counter(), Counter(fail=True)
    runner.every(3600, "a", a)
    runner.every(3600, "b", b)
    runner.run_all_now()
    assert (a.runs, b.runs, runner.failures) == (1, 1, 1)


class Blocking:
    """A job that runs until the test releases it."""

    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = []

    def __call__(self):
        self.started.set()
        self.release.wait(WAIT)
        self.finished.append("done")


def stop_in_background(runner, seen):
    def stop():
        runner.stop(timeout=WAIT)
        seen.extend(["stop returned"])

    stopper = threading.Thread(target=stop)
    stopper.start()
    return stopper


def test_stop_lets_the_running_job_finish(runner):
    job = Blocking()
    runner.every(0.05, "sweep", job)
    runner.start()
    assert job.started.wait(WAIT)
    seen = []
    stopper = stop_in_background(runner, seen)
    stopper.join(0.2)
    assert stopper.is_alive() and seen == []  # stop() waits for the job in flight...
    job.release.set()
    stopper.join(WAIT)
    assert seen == ["stop returned"]
    assert job.finished == ["done"]  # ...which completed instead of being cut off
    assert not runner._thread.is_alive()


def test_stop_starts_no_further_job(runner):
    first, second = Blocking(), Counter()
    runner.every(0.05, "outbox", first)
    runner.every(0.05, "sweep", second)
    time.sleep(0.1)  # both are due before the thread starts: one pass will take both
    runner.start()
    assert first.started.wait(WAIT)
    stopper = stop_in_background(runner, [])
    deadline = time.monotonic() + WAIT
    while not runner._stop.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)  # until stop() has been called, however slow the machine
    assert runner._stop.is_set()
    first.release.set()
    stopper.join(WAIT)
    assert first.finished == ["done"]
    assert second.runs == 0
