"""Funnel analytics: per funnel version and tenant, per block in funnel order, per option.

`funnel_stats(store, scope)` runs the grouped statements of `stats_sql` (a few rows per
version and block come back, never the conversations) and puts the figures together
with the stored funnel definitions: their order, endings, options and split branches.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import StorageError
from . import funnel_shape as shape
from . import stats_sql as q
from .experiments import SplitStats, split_stats
from .parallel import fetch_all
from .stats_sql import Scope
from .store import Store

__all__ = ["Scope", "funnel_stats", "open_existing", "FunnelStats", "BlockStats", "QUERIES"]

STATUSES = ("active", "completed", "abandoned", "handed_off", "transitioned")
ABANDON_REASONS = ("max_invalid_responses", "timeout", "membership_ended", "manual")
HOWS = ("number", "text", "synonym", "ordinal", "typo")
_HOW = {"number": "number", "ordinal": "ordinal", "fuzzy": "typo"}  # recorded -> reported


@dataclass
class OptionStats:
    number: int                 # as members see it: 1-based
    text: str
    next: str | None
    chosen: int = 0
    by: dict[str, int] = field(default_factory=lambda: dict.fromkeys(HOWS, 0))


@dataclass
class StepStats:
    step: int                   # the n-th consecutive invalid reply on the block
    action: str | None          # the ladder step's action (or a plugin's override)
    count: int


@dataclass
class BlockStats:
    block: str
    type: str = "unknown"       # from the definition; "unknown": not in this version
    leads_to: list[str] = field(default_factory=list)  # the blocks one step on
    reached: int = 0            # conversations that entered it
    answered: int = 0           # conversations that gave it a valid reply
    dropped: int = 0            # conversations abandoned while on it
    waiting: int = 0            # active conversations on it now
    invalid: int = 0            # invalid replies
    ambiguous: int = 0          # ambiguous replies
    escalation: list[StepStats] = field(default_factory=list)
    owner_notifications: int = 0
    answer_median: float | None = None  # seconds from the bot asking to a valid answer
    answer_p90: float | None = None
    options: list[OptionStats] = field(default_factory=list)
    ended: dict[str, int] = field(default_factory=dict)  # status -> conversations ended here


@dataclass
class Ending:
    block: str
    type: str                   # end | handoff | link
    count: int                  # conversations that ended there
    rate: float | None          # count / started


@dataclass
class FunnelStats:
    experience_id: str
    funnel_id: str
    version: str
    version_id: int
    name: str
    first_used: str             # when the tenant first ran this version (ISO 8601, UTC)
    started: int = 0
    statuses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    abandoned_by_reason: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(ABANDON_REASONS, 0))
    end_reasons: dict[str, int] = field(default_factory=dict)
    endings: list[Ending] = field(default_factory=list)
    blocks: list[BlockStats] = field(default_factory=list)
    splits: list[SplitStats] = field(default_factory=list)

    def block(self, name: str) -> BlockStats:
        found = next((b for b in self.blocks if b.block == name), None)
        if found is None:
            found = BlockStats(name)
            self.blocks.append(found)
        return found


def block_traffic(store: Store, funnel_id: str, experience_id: str | None = None):
    """`graph --stats`: (block, visits) and (block, classification, option_index, attempt,
    replies), grouped, for one funnel in every tenant or in one."""
    p = store.db.param
    where, params = f"funnel_id = {p}", [funnel_id]
    if experience_id:
        where += f" AND experience_id = {p}"
        params.append(experience_id)

    def run():
        visits = store.db.execute_sql(
            f"SELECT block, COUNT(*) FROM visits WHERE {where} GROUP BY block", params).fetchall()
        replies = store.db.execute_sql(
            "SELECT block, classification, option_index, attempt, COUNT(*) FROM interactions "
            f"WHERE {where} GROUP BY block, classification, option_index, attempt",
            params).fetchall()
        return visits, replies

    return store.read(run)


def open_existing(url: str) -> Store:
    """A Store for a command that only reads: a SQLite file that is not there is an
    error, never created (connecting would create it, empty), and so is a database
    without the current schema."""
    store = Store(url)  # connects lazily: nothing is created yet
    path = store.db.database if store.engine == "sqlite" else ""
    if path and path != ":memory:" and not Path(path).is_file():
        store.close()
        raise StorageError(f"no database file {path}: create it with `whopfunnel db upgrade`, "
                           "or name another with --db")
    try:
        store.check_schema()
    except BaseException:
        store.close()
        raise
    return store


# The statements, the longest first, so that two workers finish together.
QUERIES = {"time to answer": q.answer_times, "replies": q.replies, "reach": q.reach,
            "owner notifications": q.owner_notifications, "conversations": q.conversations,
            "answered": q.answered, "wording": q.text_replies, "split tests": q.split_outcomes}
STEPS = tuple(QUERIES)


def funnel_stats(store: Store, scope: Scope | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 workers: int = 2) -> list[FunnelStats]:
    """Every figure of `whopfunnel stats`, one FunnelStats per (tenant, funnel version)
    with conversations in the scope, ordered by tenant, funnel and first use.
    `progress(done, total)` is called after each statement; the statements run on
    `workers` connections at once (see `parallel.py`)."""
    scope = scope or Scope()
    d = q.Dialect(store.db, store.engine)
    finished = []

    def step(name: str) -> None:
        finished.append(name)
        if progress is not None:
            progress(len(finished), len(STEPS))

    jobs = {name: build(d, scope) for name, build in QUERIES.items()}
    rows = fetch_all(store, jobs, workers, step)
    if not rows["conversations"]:
        return []
    found: dict[int, FunnelStats] = {}
    definitions = _versions(store, d, sorted({r[0] for r in rows["conversations"]}), found)
    for name in rows:  # a version first used while the statements ran: not counted
        rows[name] = [r for r in rows[name] if r[0] in found]
    for v, status, reason, block, n in rows["conversations"]:
        f = found[v]
        f.started += n
        f.statuses[status] = f.statuses.get(status, 0) + n
        if reason:
            f.end_reasons[reason] = f.end_reasons.get(reason, 0) + n
            if status == "abandoned":
                f.abandoned_by_reason[reason] = f.abandoned_by_reason.get(reason, 0) + n
        b = f.block(block)
        if status == "active":
            b.waiting += n
        else:
            b.ended[status] = b.ended.get(status, 0) + n
            if status == "abandoned":
                b.dropped += n
    for v, block, n in rows["reach"]:
        found[v].block(block).reached = n
    _replies(found, rows["replies"])
    for v, block, n in rows["answered"]:
        found[v].block(block).answered = n
    _wording(found, definitions, rows["wording"])
    for v, block, n in rows["owner notifications"]:
        found[v].block(block or "(unknown)").owner_notifications += n
    _answer_times(found, rows["time to answer"])
    _splits(found, definitions, rows["split tests"])
    for v, f in found.items():
        _finish(f, definitions[v])
    return sorted(found.values(), key=lambda f: (f.experience_id, f.funnel_id, f.first_used,
                                                 f.version_id))


def _versions(store: Store, d: q.Dialect, ids: list[int], found: dict) -> dict[int, dict]:
    definitions = {}
    rows = []
    for start in range(0, len(ids), 500):  # old SQLite builds allow 999 parameters
        sql, params = q.versions(d, ids[start:start + 500])
        rows += store.db.execute_sql(sql, params).fetchall()
    for vid, exp, funnel_id, version, text, created in rows:
        definition = json.loads(text)
        definitions[vid] = definition
        when = created if isinstance(created, str) else created.isoformat(" ")
        found[vid] = FunnelStats(exp, funnel_id, version, vid, definition.get("name") or funnel_id,
                                 when.replace(" ", "T")[:19] + "Z")
    return definitions


def _replies(found: dict[int, FunnelStats], rows) -> None:
    steps: dict[tuple[int, str, int, str | None], int] = {}
    for v, block, kind, option, how, attempt, action, n in rows:
        b = found[v].block(block)
        if kind == "invalid":
            b.invalid += n
            key = (v, block, int(attempt or 0), action)
            steps[key] = steps.get(key, 0) + n
        elif kind == "ambiguous":
            b.ambiguous += n
        elif kind == "valid" and option is not None:
            o = _option(b, int(option))
            o.chosen += n
            if how in _HOW:
                o.by[_HOW[how]] += n
            # how == "text": split into text and synonym by `_wording`
    for (v, block, step, action), n in sorted(steps.items(), key=lambda kv: kv[0][:3]):
        found[v].block(block).escalation.append(StepStats(step, action, n))


def _option(b: BlockStats, index: int) -> OptionStats:
    while len(b.options) <= index:
        b.options.append(OptionStats(len(b.options) + 1, "", None))
    return b.options[index]


def _wording(found, definitions, rows) -> None:
    verdicts: dict[tuple[str, str], str] = {}
    for v, block, option, reply, n in rows:
        known = shape.options(definitions[v], block)
        text = known[option].get("text", "") if option is not None and option < len(known) else ""
        key = (reply, text)
        if key not in verdicts:
            verdicts[key] = shape.text_or_synonym(reply, text) if text else "text"
        _option(found[v].block(block), int(option)).by[verdicts[key]] += n


def _answer_times(found, rows) -> None:
    ranked: dict[tuple[int, str], tuple[int, list]] = {}
    for v, block, seconds, k, upto, n in rows:
        ranked.setdefault((v, block), (int(n), []))[1].append((float(seconds), int(k), int(upto)))
    for (v, block), (n, values) in ranked.items():
        b = found[v].block(block)
        b.answer_median = _round(q.percentile(values, n, "median"))
        b.answer_p90 = _round(q.percentile(values, n, "p90"))


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)  # tenths, interpolated


def _splits(found, definitions, rows) -> None:
    grouped: dict[tuple[int, str], list] = {}
    for v, block, branch, status, at, n in rows:
        grouped.setdefault((v, block), []).append((branch, status, at, n))
    for (v, block), outcomes in sorted(grouped.items()):
        definition = definitions[v]
        spec = (definition.get("blocks") or {}).get(block) or {}
        endings = [b for b in shape.block_order(definition) if shape.block_type(definition, b)
                   in shape.TERMINAL]
        found[v].splits.append(split_stats(block, spec, endings, outcomes))


def _finish(f: FunnelStats, definition: dict) -> None:
    """Funnel order, block types, option texts, endings and their conversion rates."""
    by_name = {b.block: b for b in f.blocks}
    order = shape.block_order(definition, list(by_name))
    f.blocks = [by_name.get(name) or BlockStats(name) for name in order]
    for b in f.blocks:
        b.type = shape.block_type(definition, b.block)
        spec = (definition.get("blocks") or {}).get(b.block)
        if isinstance(spec, dict):
            b.leads_to = list(dict.fromkeys(shape.successors(definition, spec)))
        for index, spec in enumerate(shape.options(definition, b.block)):
            o = _option(b, index)
            o.text, o.next = str(spec.get("text", "")), spec.get("next")
    f.endings = [Ending(b.block, b.type, sum(b.ended.values()),
                        sum(b.ended.values()) / f.started if f.started else None)
                 for b in f.blocks if b.type in shape.TERMINAL]
