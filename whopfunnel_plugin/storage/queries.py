"""The store's less frequent operations, as Peewee queries: funnel snapshots, the sweep's
set-based statements, reminders due, the poller's round robin. Each runs inside the
`Store.read` / `Store.transaction` its caller opened."""

from __future__ import annotations

import json
from datetime import datetime

from peewee import fn

from ..conversation.engine import Ended
from .writes import effect_rows


def funnel_version(store, experience_id: str, funnel, now: datetime) -> int:
    """The stored row for this exact definition, created on first use."""
    f = store.models.funnel
    key = (f.experience_id == experience_id) & (f.funnel_id == funnel.id) & (
        f.version == funnel.version)
    row = f.get_or_none(key)
    if row is None:
        f.insert(experience_id=experience_id, funnel_id=funnel.id, version=funnel.version,
                 definition=json.dumps(funnel.to_dict(), ensure_ascii=False), created_at=now,
                 ).on_conflict_ignore().execute()
        row = f.get(key)
    return row.id


def stored_funnel(store, version_id: int) -> tuple[str, dict]:
    f = store.models.funnel
    row = f.get_by_id(version_id)
    return row.version, json.loads(row.definition)


def end_expired(store, now: datetime, limit: int, *, status: str, reason: str,
                effects_due: datetime) -> list[tuple[int, str]]:
    owed = effect_rows((Ended(status, reason),), last_replies=None)
    return store.bulk.end_expired(now, limit, status, reason, owed, effects_due)


def due_reminders(store, now: datetime, limit: int) -> list:
    c = store.models.conversation
    query = (c.select(*c._meta.sorted_fields)
             .where((c.remind_at <= now) & (c.status == "active") & (c.expires_at > now))
             .order_by(c.remind_at).limit(limit))
    return store.sql.records(query)


def poll_channels(store, after_id: int, limit: int) -> list[tuple[str, int]]:
    c = store.models.conversation
    first = fn.MIN(c.id)
    base = (c.select(c.channel_id, first.alias("first_id"))
            .where((c.status == "active") & c.channel_id.is_null(False))
            .group_by(c.channel_id))
    batch = [(r.channel_id, r.first_id) for r in
             base.having(first > after_id).order_by(first).limit(limit).namedtuples()]
    if len(batch) < limit and after_id:
        batch += [(r.channel_id, r.first_id) for r in
                  base.having(first <= after_id).order_by(first).limit(limit - len(batch))
                  .namedtuples()]
    return batch


def poll_cursor(store, channel_id: str) -> str | None:
    """Where any conversation on this channel left off (a returning member's earlier one
    included), so the DM history is not paged through again."""
    c = store.models.conversation
    last = (c.select(c.poll_cursor).where((c.channel_id == channel_id)
                                          & c.poll_cursor.is_null(False))
            .order_by(c.id.desc()).first())
    return last.poll_cursor if last else None


def save_poll_cursor(store, channel_id: str, cursor: str) -> None:
    c = store.models.conversation
    c.update(poll_cursor=cursor).where((c.channel_id == channel_id)
                                       & (c.status == "active")).execute()
