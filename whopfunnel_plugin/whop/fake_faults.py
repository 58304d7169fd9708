"""The fake Whop API's fault modes (methods of the fake), and its record of each request.

Each mode can be switched from any thread while requests run (one lock), and each is
what a soak needs to show that nothing is lost, duplicated or reordered:

    fail_next(n, status, headers)   answer the next n requests `status` without acting
    limit_rate(requests, per)       answer 429 past `requests` per `per` seconds (fixed
                                    windows on the fake's clock), with Retry-After and/or
                                    X-RateLimit-Reset (unix seconds, as whop-sdk reads it)
    slow(seconds, n=None)           hold the next n requests (all: None) `seconds` before
                                    handling them; the sleep is the fake's injected one
    lose_next(n, status=500, drop=False)
                                    perform the next n POSTs, then lose the answer: answer
                                    `status`, or (drop=True) cut the connection after the
                                    headers (over real HTTP: the client sees a protocol error)
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import asdict, dataclass

RATE_HEADERS = ("retry-after", "retry-after-ms", "x-ratelimit-reset")
DROP = 0  # lose_next's marker for "cut the connection" (never an HTTP status)


@dataclass(frozen=True)
class SeenRequest:
    """One request the fake answered (or dropped): what a checker needs to count duplicates."""

    method: str
    path: str
    idempotency_key: str | None
    api_version_date: str | None
    status: int | None  # None: the connection was dropped after the work was done
    outcome: str  # ok | refused (4xx) | injected | rate_limited | lost | dropped
    at: float  # unix seconds on the fake's clock

    def as_dict(self) -> dict:
        return asdict(self)


class FaultModes:
    """Mixed into FakeWhop: `fake.fail_next(...)`, `fake.limit_rate(...)`, ..."""

    def __init__(self):
        self._faults_lock = threading.Lock()
        self._fail: deque[tuple[int, dict[str, str]]] = deque()
        self._lose: deque[int] = deque()
        self._delay = 0.0
        self._delay_left: int | None = None
        self._limit: tuple[int, float, tuple[str, ...]] | None = None
        self._window = (-1, 0)  # (window number, requests answered in it)

    def fail_next(self, n: int, status: int = 500, headers: dict[str, str] | None = None) -> None:
        with self._faults_lock:
            self._fail.extend([(status, dict(headers or {}))] * n)

    def lose_next(self, n: int = 1, *, status: int = 500, drop: bool = False) -> None:
        if not drop and status < 500:
            raise ValueError("a lost answer is a 5xx or a dropped connection")
        with self._faults_lock:
            self._lose.extend([DROP if drop else status] * n)

    def slow(self, seconds: float, n: int | None = None) -> None:
        if seconds < 0:
            raise ValueError("a delay cannot be negative")
        with self._faults_lock:
            self._delay, self._delay_left = float(seconds), n

    def limit_rate(self, requests: int | None, per: float = 1.0,
                   headers: tuple[str, ...] = ("retry-after", "x-ratelimit-reset")) -> None:
        if requests is not None and (requests < 1 or per <= 0 or not set(headers) <= set(RATE_HEADERS)):
            raise ValueError(f"limit_rate needs requests >= 1, per > 0 and headers among {RATE_HEADERS}")
        with self._faults_lock:
            self._limit = None if requests is None else (requests, float(per), tuple(headers))
            self._window = (-1, 0)

    def clear(self) -> None:
        """The API is healthy again: every mode off."""
        with self._faults_lock:
            self._fail.clear()
            self._lose.clear()
            self._delay, self._delay_left = 0.0, None
            self._limit = None

    # -- what the app asks, once per request ---------------------------------------------

    def take_delay(self) -> float:
        with self._faults_lock:
            if not self._delay or self._delay_left == 0:
                return 0.0
            if self._delay_left is not None:
                self._delay_left -= 1
            return self._delay

    def take_failure(self) -> tuple[int, dict[str, str]] | None:
        with self._faults_lock:
            return self._fail.popleft() if self._fail else None

    def take_loss(self) -> int | None:
        """For a POST that was performed: the status to lose its answer with, DROP, or None."""
        with self._faults_lock:
            return self._lose.popleft() if self._lose else None

    def over_rate(self, now: float) -> dict[str, str] | None:
        """Count a request at unix time `now`; the 429 headers when it is over the limit."""
        with self._faults_lock:
            if self._limit is None:
                return None
            requests, per, names = self._limit
            window = math.floor(now / per)
            number, count = self._window
            if number != window:
                number, count = window, 0
            if count < requests:
                self._window = (number, count + 1)
                return None
        end = (window + 1) * per
        values = {"retry-after": str(max(1, math.ceil(end - now))),
                  "retry-after-ms": str(max(1, math.ceil((end - now) * 1000))),
                  "x-ratelimit-reset": str(math.ceil(end))}
        return {name: values[name] for name in names}
