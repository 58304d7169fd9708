"""Durations as written in YAML: `90s`, `15m`, `24h`, `7d`, or combined `1h30m`."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"(?:\d+\s*[smhdw]\s*)+")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


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

