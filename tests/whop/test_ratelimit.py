"""The shared request budget: pacing, bursts, pauses, refusals, and many threads at once."""

from __future__ import annotations

import threading

import pytest

from whopfunnel_plugin.whop.ratelimit import RateLimiter


class Time:
    """Monotonic time that moves only when a caller sleeps; records when each slot began."""

    def __init__(self):
        self.now = 0.0
        self.starts: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def take(limiter, time, n):
    for _ in range(n):
        assert limiter.acquire() is None
        time.starts.append(time.now)
    return time.starts


def test_requests_are_spread_at_the_rate():
    time = Time()
    limiter = RateLimiter(4, monotonic=time.monotonic, sleep=time.sleep)
    assert take(limiter, time, 5) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_a_burst_goes_at_once_then_the_rate_holds():
    time = Time()
    limiter = RateLimiter(1, burst=3, monotonic=time.monotonic, sleep=time.sleep)
    assert take(limiter, time, 5) == [0.0, 0.0, 0.0, 1.0, 2.0]
    time.now += 100  # a quiet spell refills the burst, never more than the burst
    assert take(limiter, time, 4)[-4:] == [102.0, 102.0, 102.0, 103.0]


def test_a_pause_holds_everyone_and_the_rate_resumes_without_a_burst():
    time = Time()
    limiter = RateLimiter(2, burst=4, monotonic=time.monotonic, sleep=time.sleep)
    limiter.pause(10)
    assert limiter.paused_for() == 10
    assert take(limiter, time, 3) == [10.0, 10.5, 11.0]
    limiter.pause(10)
    limiter.pause(1)  # a shorter pause never shortens a longer one
    limiter.pause(-5)
    assert limiter.paused_for() == 10


def test_an_unlimited_limiter_only_pauses():
    time = Time()
    limiter = RateLimiter(monotonic=time.monotonic, sleep=time.sleep)
    assert take(limiter, time, 3) == [0.0, 0.0, 0.0]
    limiter.pause(2.5)
    assert take(limiter, time, 2)[-2:] == [2.5, 2.5]
    assert repr(limiter) == "RateLimiter(unlimited, burst=1)"


def test_a_wait_over_the_limits_is_refused_and_reserves_nothing():
    time = Time()
    limiter = RateLimiter(1, monotonic=time.monotonic, sleep=time.sleep)
    assert limiter.acquire() is None
    assert limiter.acquire(max_wait=0.5) == 1.0  # pacing: the next slot is 1 s away
    limiter.pause(30)
    assert limiter.acquire(max_pause=0) == 30.0  # the pause alone is too long for this caller
    assert limiter.acquire(max_pause=60, max_wait=0.5) is None  # pause waited out, then its slot
    assert time.now == 30.0


@pytest.mark.parametrize("rate, burst", [(0, 1), (-1, 1), (1, 0), (1, 1.5), (1, True)])
def test_nonsense_budgets_are_refused(rate, burst):
    with pytest.raises(ValueError):
        RateLimiter(rate, burst=burst)


def test_many_threads_never_share_a_slot():
    # Time stands still: each caller's sleep is exactly the start of the slot it reserved.
    waits: list[float] = []
    limiter = RateLimiter(10, monotonic=lambda: 0.0, sleep=waits.append)
    threads = [threading.Thread(target=lambda: [limiter.acquire() for _ in range(25)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(waits) == 199  # the first slot needs no sleep
    assert sorted(round(w, 6) for w in waits) == [round(i / 10, 6) for i in range(1, 200)]


def test_plugin_yaml_budget_is_one_limiter_for_the_dispatcher_and_the_poller(tmp_path, fake):
    import httpx

    from whopfunnel_plugin import make_plugin_manager
    from whopfunnel_plugin.service.poller import Poller
    from whopfunnel_plugin.storage.store import Store

    url = f"sqlite:///{tmp_path / 'wf.db'}"
    store = Store(url)
    store.upgrade()
    store.close()
    (tmp_path / "plugin.yaml").write_text(f"database: {url}\nwhop:\n  rate_limit: {{requests: 30, per: 1m, "
                                          "burst: 3}\n  api_version_date: 2026-08-21\n")
    pm = make_plugin_manager(tmp_path / "plugin.yaml", environ={"WHOP_API_KEY": fake.api_key},
                             transport=httpx.WSGITransport(app=fake), entrypoints=False)
    try:
        client = pm.runtime.client
        assert (client.limiter.rate, client.limiter.burst) == (0.5, 3)
        assert pm.runtime.dispatcher.client is client
        assert Poller(pm, bot_user_id=None).runtime.client is client
        client.get_account("biz_1")
        assert [r.api_version_date for r in fake.seen_requests()] == ["2026-08-21"]
    finally:
        pm.runtime.close()
