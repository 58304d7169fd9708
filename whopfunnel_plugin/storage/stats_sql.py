"""The analytics queries, as SQL text: one grouped statement per figure family.

Written against the tables and columns (not the Peewee models), with the engine's own
placeholder and identifier quoting, and run with `db.execute_sql`. Each statement scans
its table once and returns aggregates only: a handful of rows per funnel version and
block, whatever the number of conversations. Where the dialects differ (a duration in
seconds, integer division) `Dialect` says how; the window functions (ROW_NUMBER and
COUNT over a named window) are in SQLite >= 3.28, PostgreSQL and MariaDB >= 10.2 alike.

Every statement joins `conversations c` and filters it with the `Scope` (tenant, funnel,
start date), so the figures describe the conversations that started in the scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

QUANTILES = {"median": (1, 2), "p90": (9, 10)}  # name -> the fraction, as integers


@dataclass(frozen=True)
class Scope:
    """Which conversations count: by tenant, funnel id and start time (`until` excluded)."""

    experience_id: str | None = None
    funnel_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class Dialect:
    """SQL spelling for one engine ('sqlite' | 'postgres' | 'mysql')."""

    def __init__(self, db, engine: str):
        self.db, self.engine, self.p = db, engine, db.param

    def q(self, name: str) -> str:
        """A quoted identifier; `c.block` quotes both parts."""
        left, right = self.db.quote[0], self.db.quote[-1]
        return ".".join(f"{left}{part}{right}" for part in name.split("."))

    def seconds(self, later: str, earlier: str) -> str:
        """`later - earlier` in seconds, as a float."""
        if self.engine == "sqlite":
            return f"((julianday({later}) - julianday({earlier})) * 86400.0)"
        if self.engine == "postgres":
            return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"
        return f"(TIMESTAMPDIFF(MICROSECOND, {earlier}, {later}) / 1000000.0)"

    def tenths(self, seconds: str) -> str:
        """Seconds rounded to a tenth (PostgreSQL rounds numerics, not floats)."""
        return f"ROUND(CAST({seconds} AS NUMERIC), 1)" if self.engine == "postgres" else \
            f"ROUND({seconds}, 1)"

    def integer(self, expr: str) -> str:
        """An integer (PostgreSQL's and MariaDB's SUM of integers is a numeric)."""
        kind = {"postgres": "BIGINT", "mysql": "SIGNED"}.get(self.engine)
        return f"CAST({expr} AS {kind})" if kind else expr

    def div(self, a: str, b: int) -> str:
        """Integer division of non-negative integers."""
        return f"(({a}) DIV {b})" if self.engine == "mysql" else f"(({a}) / {b})"

    def when(self, value: datetime):
        """A datetime parameter as the columns store it: naive UTC (text on SQLite)."""
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat(" ") if self.engine == "sqlite" else value


def where(d: Dialect, scope: Scope, *extra: str) -> tuple[str, list]:
    """`WHERE ...` on `conversations c` for the scope, plus `extra` conditions."""
    parts, params = list(extra), []
    for column, value in (("experience_id", scope.experience_id), ("funnel_id", scope.funnel_id)):
        if value is not None:
            parts.append(f"{d.q('c.' + column)} = {d.p}")
            params.append(value)
    if scope.since is not None:
        parts.append(f"{d.q('c.started_at')} >= {d.p}")
        params.append(d.when(scope.since))
    if scope.until is not None:
        parts.append(f"{d.q('c.started_at')} < {d.p}")
        params.append(d.when(scope.until))
    return (" WHERE " + " AND ".join(parts)) if parts else "", params


def _join(d: Dialect, alias: str, scope: Scope) -> str:
    """`<table alias> JOIN conversations c`, on the conversation and (tenant safety) its tenant.

    On SQLite, over the whole database, CROSS JOIN keeps visits or interactions as the
    outer loop: one scan plus a primary-key lookup per row, instead of an index probe and
    a row fetch per row. A filtered scope leaves the order to the planner (it starts from
    the tenant's index entries, or from the conversations in the date range). Messages
    are never the outer loop: most of them are not owner notices."""
    table = {"v": "visits", "i": "interactions", "m": "messages"}[alias]
    unfiltered = scope == Scope()
    join = "CROSS JOIN" if d.engine == "sqlite" and unfiltered and alias != "m" else "JOIN"
    return (f"{d.q(table)} {alias} {join} {d.q('conversations')} c"
            f" ON {d.q('c.id')} = {d.q(alias + '.conversation_id')}"
            f" AND {d.q('c.experience_id')} = {d.q(alias + '.experience_id')}")


def conversations(d: Dialect, scope: Scope) -> tuple[str, list]:
    """(version id, status, end reason, current block, conversations)."""
    cond, params = where(d, scope)
    cols = ", ".join(d.q("c." + n) for n in ("status", "end_reason", "block"))
    # SQLite: the unary + keeps the planner off the version index (a row fetch per entry,
    # and the GROUP BY sorts anyway): a plain table scan is faster.
    version = ("+" if d.engine == "sqlite" else "") + d.q("c.funnel_version_id")
    return (f"SELECT {version}, {cols}, COUNT(*) FROM {d.q('conversations')} c{cond}"
            " GROUP BY 1, 2, 3, 4"), params


def reach(d: Dialect, scope: Scope) -> tuple[str, list]:
    """(version id, block, conversations that entered it)."""
    cond, params = where(d, scope)
    return (f"SELECT {d.q('c.funnel_version_id')}, {d.q('v.block')},"
            f" COUNT(DISTINCT {d.q('v.conversation_id')}) FROM {_join(d, 'v', scope)}{cond}"
            " GROUP BY 1, 2"), params


def replies(d: Dialect, scope: Scope) -> tuple[str, list]:
    """(version id, block, classification, option index, how, attempt, action, replies)."""
    cond, params = where(d, scope)
    cols = ", ".join(d.q("i." + n) for n in ("block", "classification", "option_index", "how",
                                             "attempt", "action"))
    return (f"SELECT {d.q('c.funnel_version_id')}, {cols}, COUNT(*) FROM {_join(d, 'i', scope)}{cond}"
            " GROUP BY 1, 2, 3, 4, 5, 6, 7"), params


def answered(d: Dialect, scope: Scope) -> tuple[str, list]:
    """(version id, block, conversations with a valid reply on it)."""
    cond, params = where(d, scope, f"{d.q('i.classification')} = 'valid'")
    return (f"SELECT {d.q('c.funnel_version_id')}, {d.q('i.block')},"
            f" COUNT(DISTINCT {d.q('i.conversation_id')}) FROM {_join(d, 'i', scope)}{cond}"
            " GROUP BY 1, 2"), params


def text_replies(d: Dialect, scope: Scope) -> tuple[str, list]:
    """(version id, block, option index, reply text, replies) for choices matched by text:
    one row per distinct wording, for telling an option's text from its synonyms."""
    cond, params = where(d, scope, f"{d.q('i.classification')} = 'valid'",
                         f"{d.q('i.how')} = 'text'")
    return (f"SELECT {d.q('c.funnel_version_id')}, {d.q('i.block')}, {d.q('i.option_index')},"
            f" {d.q('i.text')}, COUNT(*) FROM {_join(d, 'i', scope)}{cond} GROUP BY 1, 2, 3, 4"), params


def owner_notifications(d: Dialect, scope: Scope) -> tuple[str, list]:
    """(version id, block, owner messages queued). A handoff notice belongs to the block the
    conversation ended on; a notify_owner one to the block of its first notify_owner step
    (the owner is told once per conversation and reason: key `wf-owner-<id>-<reason>`)."""
    first = (f"(SELECT {d.q('n.block')} FROM {d.q('interactions')} n"
             f" WHERE {d.q('n.conversation_id')} = {d.q('c.id')} AND {d.q('n.action')} = 'notify_owner'"
             f" ORDER BY {d.q('n.id')} LIMIT 1)")
    # Only conversations whose owner was told can have owner messages: testing the flag
    # first skips the index probe into messages for all the others.
    cond, params = where(d, scope, f"{d.q('c.owner_notified')} = {d.p}",
                         f"{d.q('m.direction')} = 'out'", f"{d.q('m.recipient')} = 'owner'")
    version = ("+" if d.engine == "sqlite" else "") + d.q("c.funnel_version_id")
    sql = (f"SELECT {version},"
           f" CASE WHEN {d.q('m.idempotency_key')} LIKE {d.p} THEN {d.q('c.block')} ELSE {first} END,"
           f" COUNT(*) FROM {_join(d, 'm', scope)}{cond} GROUP BY 1, 2")
    return sql, ["%-handoff", True, *params]


def answer_times(d: Dialect, scope: Scope) -> tuple[str, list]:
    """(version id, block, seconds, replies, replies up to these seconds, all replies): the
    values around the median and the 90th percentile of the time to a valid answer per
    block, for linear interpolation (what PostgreSQL's percentile_cont does), in tenths
    of a second. The time runs from the previous reply in the conversation (the moment
    the bot last asked) or, for its first reply, the conversation's start.

    Cost matters here (on SQLite every sort is a sorter pass over the rows): the previous
    reply is joined through the (conversation_id, id) index rather than found by LAG()
    over every reply; the replies are grouped by their tenth of a second before the
    running count, and one named window gives the running and the total count."""
    cond, params = where(d, scope, f"{d.q('i.classification')} = 'valid'")
    previous = (f"(SELECT MAX({d.q('p2.id')}) FROM {d.q('interactions')} p2"
                f" WHERE {d.q('p2.conversation_id')} = {d.q('i.conversation_id')}"
                f" AND {d.q('p2.id')} < {d.q('i.id')})")
    asked = f"COALESCE({d.q('p.created_at')}, {d.q('c.started_at')})"
    timed = (f"SELECT {d.q('c.funnel_version_id')} AS v, {d.q('i.block')} AS b,"
             f" {d.tenths(d.seconds(d.q('i.created_at'), asked))} AS s"
             f" FROM {_join(d, 'i', scope)}"
             f" LEFT JOIN {d.q('interactions')} p ON {d.q('p.id')} = {previous}{cond}")
    grouped = f"SELECT v, b, s, COUNT(*) AS k FROM ({timed}) x GROUP BY v, b, s"
    running = d.integer("SUM(k) OVER (w ROWS UNBOUNDED PRECEDING)")
    total = d.integer("SUM(k) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)")
    counted = (f"SELECT v, b, s, k, {running} AS upto, {total} AS n"
               f" FROM ({grouped}) y WINDOW w AS (PARTITION BY v, b ORDER BY s)")
    ranks = [f"1 + {d.div(f'{num} * (n - 1){extra}', den)}"
             for num, den in QUANTILES.values() for extra in ("", f" + {den - 1}")]
    covers = " OR ".join(f"(upto - k < {r} AND {r} <= upto)" for r in ranks)
    return f"SELECT v, b, s, k, upto, n FROM ({counted}) z WHERE {covers}", params


def split_outcomes(d: Dialect, scope: Scope) -> tuple[str, list]:
    """(version id, split block, branch index, status, current block, conversations)."""
    cond, params = where(d, scope, f"{d.q('i.classification')} = 'split'")
    return (f"SELECT {d.q('c.funnel_version_id')}, {d.q('i.block')}, {d.q('i.option_index')},"
            f" {d.q('c.status')}, {d.q('c.block')}, COUNT(DISTINCT {d.q('c.id')})"
            f" FROM {_join(d, 'i', scope)}{cond} GROUP BY 1, 2, 3, 4, 5"), params


def versions(d: Dialect, ids: list[int]) -> tuple[str, list]:
    """(id, experience id, funnel id, version, definition JSON, created at) of these versions."""
    marks = ", ".join([d.p] * len(ids))
    cols = ", ".join(d.q(n) for n in ("id", "experience_id", "funnel_id", "version", "definition",
                                      "created_at"))
    return f"SELECT {cols} FROM {d.q('funnels')} WHERE {d.q('id')} IN ({marks})", list(ids)


def percentile(rows: list[tuple[float, int, int]], n: int, name: str) -> float | None:
    """The `QUANTILES[name]` quantile of n sorted values given as (value, how many,
    how many up to this value) rows that include the ones around it: linear
    interpolation between the two closest ranks, as percentile_cont does."""
    num, den = QUANTILES[name]
    lo, rest = divmod(num * (n - 1), den)

    def at(rank: int) -> float | None:
        return next((v for v, k, upto in rows if upto - k < rank <= upto), None)

    low = at(1 + lo) if n else None
    if low is None:
        return None
    high = at(2 + lo) if rest else low
    return low + ((low if high is None else high) - low) * rest / den
