"""When to ask Whop again, and after how long (pure: the time arrives as `now`).

What whop-sdk 2.6.0 does (`core/http_client.py`) and where whopfunnel differs:
- both retry 408, 409, 429 and 5xx; whopfunnel also obeys `x-should-retry` (older SDKs);
- the SDK resends after connect and protocol errors whatever the request; whopfunnel
  resends only what cannot double-act: a request that never reached the server (connect
  errors), a GET, a request carrying an Idempotency-Key, or one Whop documents as
  idempotent. A read timeout or a 5xx on any other POST is never resent in-process;
- the SDK's `retry-after-ms` parsing compares a string with an int, a TypeError it
  swallows, so the header is ignored; here it is read first, then `Retry-After` (seconds
  or an HTTP date), then `X-RateLimit-Reset` (unix seconds, as the SDK reads it);
- the SDK caps a longer wait at 60 s and retries early; here a wait over 60 s, or one
  that only an X-RateLimit-Reset names, is never slept: the client raises `RetryLater`
  with it, so the caller can defer the work (the outbox does) instead.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime

import httpx

RETRY_STATUSES = frozenset({408, 409, 429})
MAX_SLEEP = 60.0  # the longest Whop-requested wait slept in-process
INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 8.0
# The request never left this machine: resending it cannot make Whop act twice.
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class Wait:
    """A wait the server asked for, and the header that asked."""

    seconds: float
    header: str

    @property
    def sleepable(self) -> bool:
        """Short enough, and explicit enough, to sleep in-process before a retry."""
        return self.seconds <= MAX_SLEEP and self.header != "x-ratelimit-reset"


def requested_wait(headers: Mapping[str, str], now: float) -> Wait | None:
    """The wait the answer's headers ask for (seconds from `now`, unix time), or None."""
    ms = _number(headers.get("retry-after-ms"))
    if ms is not None and ms >= 0:
        return Wait(ms / 1000, "retry-after-ms")
    value = headers.get("retry-after")
    if value is not None:
        seconds = _number(value)
        if seconds is None:
            seconds = _http_date(value, now)
        if seconds is not None and seconds >= 0:
            return Wait(seconds, "retry-after")
    reset = _number(headers.get("x-ratelimit-reset"))
    if reset is not None and reset > now:
        return Wait(reset - now, "x-ratelimit-reset")
    return None


def retryable(response: httpx.Response) -> bool:
    """A status worth asking again for (408, 409, 429, 5xx), unless `x-should-retry` says."""
    override = response.headers.get("x-should-retry", "").strip().lower()
    if override in ("true", "false"):
        return override == "true"
    return response.status_code in RETRY_STATUSES or response.status_code >= 500


def backoff(attempt: int, rng: random.Random) -> float:
    """0.5 s x 2^attempt, capped at 8 s; jitter shortens it by up to a quarter."""
    return min(INITIAL_BACKOFF * 2 ** attempt, MAX_BACKOFF) * (1 - 0.25 * rng.random())


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _http_date(text: str, now: float) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC, not local time
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp() - now
