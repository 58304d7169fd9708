"""What `stats` and `report` share: the database and filter options, and a progress bar."""

from __future__ import annotations

import functools
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import click

from ..errors import ConfigError
from .options import current_config


def scope_options(fn):
    """--db, --experience, --funnel, --since, --until; the command gets `store, scope`."""

    @click.option("--db", "db", default=None, metavar="URL",
                  help="Database URL or SQLite file (default: DATABASE_URL, then plugin.yaml).")
    @click.option("--experience", "experience_id", default=None, metavar="EXP",
                  help="Only this tenant (Whop experience id).")
    @click.option("--funnel", "funnel_id", default=None, metavar="ID", help="Only this funnel.")
    @click.option("--since", default=None, metavar="DATE",
                  help="Conversations started on or after this date or ISO 8601 time (UTC).")
    @click.option("--until", default=None, metavar="DATE",
                  help="Conversations started up to this date (inclusive) or before this time.")
    @functools.wraps(fn)
    def wrapper(db, experience_id, funnel_id, since, until, **kwargs):
        from ..storage.stats import Scope

        start = parse_date(since, "--since") if since else None
        end = parse_date(until, "--until", end=True) if until else None
        if start and end and start >= end:
            raise ConfigError(f"--since {since} is not before --until {until}")
        scope = Scope(experience_id, funnel_id, start, end)
        return fn(url=database_url(db), scope=scope, **kwargs)

    return wrapper


def database_url(db: str | None) -> str:
    """--db as given (a URL, or a file path taken as SQLite), else the configured one."""
    if not db:
        return current_config().database_url()
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).resolve()}"


def parse_date(text: str, option: str, end: bool = False) -> datetime:
    """A date (the whole day: from its start, or `end`: up to its end) or an ISO 8601 time."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is not None and len(text) == 10:
        when = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        return when + timedelta(days=1) if end else when
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{option}: {text!r} is not a date like 2026-03-01 or an ISO 8601 "
                          "time like 2026-03-01T12:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def describe(scope) -> dict[str, str]:
    """The filters as a reader should see them."""
    def day(when: datetime | None, end: bool) -> str:
        if when is None:
            return "the beginning" if not end else "now"
        if when.hour == when.minute == when.second == when.microsecond == 0:
            return (when - timedelta(days=1) if end else when).date().isoformat() + (
                " (inclusive)" if end else "")
        return when.isoformat().replace("+00:00", "Z")

    return {"tenant": scope.experience_id or "all tenants",
            "funnel": scope.funnel_id or "all funnels",
            "from": day(scope.since, False), "to": day(scope.until, True)}


class Progress:
    """click's progress bar on standard error, shown only once the aggregation has run for
    `after` seconds and only on a terminal: quick runs and pipes stay clean."""

    def __init__(self, label: str, *, after: float = 1.0, stream=None, clock=time.monotonic):
        self.label, self.after, self.clock = label, after, clock
        self.stream = stream if stream is not None else sys.stderr
        self.started = clock()
        self.bar = None
        self.shown = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            isatty = getattr(self.stream, "isatty", None)
            if not (isatty and isatty()) or self.clock() - self.started < self.after:
                return
            self.bar = click.progressbar(length=total, label=self.label, file=self.stream)
            self.bar.__enter__()
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
