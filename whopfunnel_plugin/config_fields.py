"""Reading one plugin.yaml value each: the right type, or a problem at its line and column."""

from __future__ import annotations

import datetime
import re

from .durations import RateBudget, parse_duration, parse_rate
from .funnel.schema import check_keys
from .funnel.yamlsource import Document, YMap
from .preflight import looks_like_secret

API_VERSION_DATE = "2026-10-15-1"  # the Api-Version-Date whopfunnel is tested against (whop-sdk 2.6.0)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VERSION_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(-\d+)?\Z")


def section(doc: Document, data: YMap, key: str, keys: tuple[str, ...]) -> YMap:
    value = data.get(key)
    if value is None:
        return YMap()
    if not isinstance(value, YMap):
        doc.problem(data.where(key), f"{key} must be a mapping")
        return YMap()
    check_keys(doc, value, keys, f"in {key}")
    return value


def text(doc, m: YMap, key: str, where: str, default):
    if key not in m or m[key] is None:
        return default
    if not isinstance(m[key], str):
        doc.problem(m.where(key), f"{where}{key} must be text, not {m[key]!r}")
        return default
    return m[key]


def duration(doc, m: YMap, key: str, where: str, default, allow_none=False, allow_zero=False):
    if key not in m:
        return default
    if m[key] is None and allow_none:
        return None
    try:
        value = parse_duration(m[key])
        if value == 0 and not allow_zero:
            raise ValueError("must be longer than zero")
        return value
    except ValueError as exc:
        doc.problem(m.where(key), f"{where}{key}: {exc}")
        return default


def count(doc, m: YMap, key: str, default: int) -> int:
    value = m.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        doc.problem(m.where(key), f"whop.{key} must be a whole number of at least 1, not {value!r}")
        return default
    return value


def env_name(doc, m: YMap, key: str, default: str) -> str:
    name = text(doc, m, key, "whop.", default)
    if looks_like_secret(name):  # never echoed: it may be the real thing
        doc.problem(m.where(key), f"whop.{key} must name an environment variable (like "
                    f"{default}), but its value looks like a secret itself (not "
                    "shown); put the secret in the environment, its name here, and rotate it "
                    "if this file was shared")
        return default
    if not _ENV_NAME.match(name):
        doc.problem(m.where(key), f"whop.{key} names an environment variable (like WHOP_API_KEY); "
                    "never put the secret itself in plugin.yaml")
        return default
    return name


def version_date(doc, m: YMap, default: str) -> str:
    value = m.get("api_version_date", default)
    if isinstance(value, datetime.date):  # YAML reads an unquoted 2026-10-15 as a date
        value = value.isoformat()
    if not isinstance(value, str) or not _VERSION_DATE.match(value):
        doc.problem(m.where("api_version_date"), "whop.api_version_date must be an Api-Version-Date "
                    f"like {API_VERSION_DATE}, not {value!r}")
        return default
    return value


def rate_limit(doc, m: YMap, default: RateBudget | None) -> RateBudget | None:
    if "rate_limit" not in m:
        return default
    value = m["rate_limit"]
    if value is None:
        return None  # no budget: only Whop's 429s slow us down
    try:
        return parse_rate(dict(value) if isinstance(value, YMap) else value)
    except ValueError as exc:
        doc.problem(m.where("rate_limit"), f"whop.rate_limit {exc}")
        return default
