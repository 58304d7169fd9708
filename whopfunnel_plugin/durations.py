"""Durations as written in YAML: `90s`, `15m`, `24h`, `7d`, or combined `1h30m`; and request
budgets: `20/s`, `100/10s`, `600/m`, or `{requests: 20, per: 1s, burst: 5}`."""

from __future__ import annotations

import re
from typing import NamedTuple

_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"(?:\d+\s*[smhdw]\s*)+")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\S+)\s*\Z")
RATE_FORMS = "like 20/s, 100/10s, 600/m or {requests: 20, per: 1s, burst: 5}"


class RateBudget(NamedTuple):
    """`requests` per `per` seconds, at most `burst` of them at once."""

    requests: int
    per: int
    burst: int = 1

    @property
    def rate(self) -> float:
        return self.requests / self.per

    def __str__(self) -> str:
        return f"{self.requests}/{self.per}s" + (f" (burst {self.burst})" if self.burst > 1 else "")


def parse_duration(value: object) -> int:
    """Return the duration in seconds; raise ValueError with a message a user can act on."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"expected a duration like 90s, 15m, 24h or 7d, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value}")
        return value
    text = value.strip().lower()
    if text.isdigit():
        return int(text)
    if not _WHOLE.fullmatch(text):
        raise ValueError(f"expected a duration like 90s, 15m, 24h or 7d, got {value!r}")
    return sum(int(n) * _UNIT[u] for n, u in _PART.findall(text))



def parse_rate(value: object) -> RateBudget:
    """A request budget; raise ValueError with a message a user can act on."""
    problem = ValueError(f"must be a request budget {RATE_FORMS} (whole numbers of at least 1), "
                         f"not {value!r}")
    try:
        if isinstance(value, str) and (match := _RATE.match(value)):
            period = match[2]
            budget = RateBudget(int(match[1]), parse_duration(f"1{period}" if period.isalpha() else period))
        elif isinstance(value, dict) and set(value) <= {"requests", "per", "burst"} and "requests" in value:
            budget = RateBudget(value["requests"], parse_duration(value.get("per", "1s")),
                                value.get("burst", 1))
        else:
            raise problem
    except ValueError:
        raise problem from None
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in budget):
        raise problem
    return budget
