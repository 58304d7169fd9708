"""The request budget every caller with one Whop API key shares (the dispatcher, the poller).

A token bucket, kept as the time the next request may start (GCRA): `rate` requests per
second on average, at most `burst` at once after a quiet spell. `acquire()` reserves the
next slot under the lock and sleeps until it comes outside it, so callers queue in the
order they arrived and none holds the lock while waiting. `pause(seconds)` holds every
caller back, as a 429's Retry-After or X-RateLimit-Reset asks, and the budget resumes at
its steady rate afterwards (no burst the moment the pause ends). Time comes from the
injected `monotonic` and `sleep`, so tests never really sleep.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any


class RateLimiter:
    """`rate` requests per second (math.inf: no budget, pauses only), `burst` at once."""

    def __init__(self, rate: float = math.inf, *, burst: int = 1,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Any] = time.sleep):
        if not rate > 0:
            raise ValueError(f"rate must be above zero, not {rate!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be a whole number of at least 1, not {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self._interval = 0.0 if math.isinf(rate) else 1.0 / rate
        self._tolerance = (burst - 1) * self._interval
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tat = -math.inf  # the "theoretical arrival time" of the next request
        self._paused_until = -math.inf

    def __repr__(self) -> str:
        rate = "unlimited" if math.isinf(self.rate) else f"{self.rate:g}/s"
        return f"RateLimiter({rate}, burst={self.burst})"

    def acquire(self, *, max_wait: float = math.inf, max_pause: float = math.inf) -> float | None:
        """Take one request's slot, sleeping until it comes; None once it has.

        Refuses, reserving nothing, when the wait would exceed `max_pause` seconds of a
        server-requested pause or `max_wait` seconds of pacing on top of it; then returns
        that wait so the caller can defer the request instead.
        """
        while True:
            with self._lock:
                now = self._monotonic()
                pause = max(0.0, self._paused_until - now)
                start = max(now, self._paused_until, self._tat - self._tolerance)
                wait = start - now
                if pause > max_pause or wait - pause > max_wait:
                    return wait
                self._tat = max(self._tat, start) + self._interval
                paused_until = self._paused_until
            if wait > 0:
                self._sleep(wait)
            with self._lock:
                # A 429 seen while we slept pauses us too: queue again behind that pause.
                if self._paused_until == paused_until or self._paused_until <= self._monotonic():
                    return None

    def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds` (a pause never shortens a longer one)."""
        if not seconds > 0:
            return
        with self._lock:
            until = self._monotonic() + seconds
            if until > self._paused_until:
                self._paused_until = until
                self._tat = max(self._tat, until + self._tolerance)

    def paused_for(self) -> float:
        """Seconds left of the current pause (0 when none)."""
        with self._lock:
            return max(0.0, self._paused_until - self._monotonic())
