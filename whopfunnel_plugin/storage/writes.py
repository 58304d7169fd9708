"""Writing what the engine decided: one transaction per event, all of it or none of it.

A `Change` is one conversation's part of an event: its record as read (the UPDATE
checks the record's revision, so a conversation that moved meanwhile is a conflict,
not a lost update) or the new conversation to create (the unique index on the active
member settles concurrent joins), the decision, and the member message it answers.
The member message's interaction row is the dedupe: its Whop message id is unique, so a
message processed before writes nothing. A webhook delivery id is recorded in the same
transaction, so a redelivered webhook is a no-op.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from peewee import IntegrityError

from ..conversation.engine import Decision, Ended, NotifyOwner, State
from ..events import storable_text
from .records import update_values

LAST_REPLIES = 5  # member messages an owner notification quotes


@dataclass(frozen=True)
class NewConversation:
    """A conversation to create, as a join starts it."""

    experience_id: str
    user_id: str
    funnel_id: str
    funnel_version_id: int
    started_at: datetime
    user_name: str | None = None
    company_id: str | None = None
    product_id: str | None = None


@dataclass(frozen=True)
class Inbound:
    """The member message a change answers."""

    message_id: str
    text: str


@dataclass(frozen=True)
class Change:
    decision: Decision
    record: object | None = None  # the conversation as read; None with `new`
    new: NewConversation | None = None
    inbound: Inbound | None = None
    remind_at: datetime | None = None  # when the state written owes its one reminder


@dataclass
class Written:
    """What a write did: `status` is "ok", "conflict" (a conversation changed since it was
    read, or a concurrent join won: read again and decide again) or "duplicate"."""

    status: str
    records: list = field(default_factory=list)  # each change's conversation, as written
    effects: list[int] = field(default_factory=list)  # owed hook calls, for inline firing


class Conflict(Exception):
    """Roll back: the transaction's picture of a conversation is out of date."""


class Duplicate(Exception):
    """Roll back: this message or delivery was processed before."""


def apply(sql, changes: Sequence[Change], *, now: datetime, queued_at: datetime,
          effects_due: datetime, delivery_id: str | None) -> Written:
    """Run inside a transaction; raises Conflict or Duplicate to have it rolled back."""
    if delivery_id is not None and sql.insert_id(sql.delivery, (delivery_id, now)) is None:
        raise Duplicate()
    written = Written("ok")
    for change in changes:
        record = _write_state(sql, change, now)
        _write_outcome(sql, record, change, now, queued_at)
        written.effects += _owe(sql, record, change.decision, effects_due)
        written.records.append(record)
    return written


def _write_state(sql, change: Change, now: datetime):
    state: State = change.decision.state
    if change.new is None:
        record = change.record
        values = update_values(record, state, now, change.remind_at)
        if sql.update(record.id, record.revision, values) != 1:
            raise Conflict()
        return record.evolve(**values)
    new = change.new
    values = (new.experience_id, new.user_id, new.user_id if state.active else None,
              new.funnel_version_id, new.funnel_id, state.block, state.status, state.end_reason,
              state.invalid_count, dict(state.variables), state.owner_notified,
              state.reminder_sent, new.started_at, state.last_activity, state.expires_at,
              None if state.active else now, new.user_name, new.company_id, new.product_id, None,
              change.remind_at, 1)  # revision 1: the first write of its state
    try:
        row_id = sql.insert_id(sql.new, values)
    except IntegrityError:  # the member's active slot is taken: a concurrent join won
        raise Conflict() from None
    return sql.one(sql.by_id_sql, (row_id,))


def _write_outcome(sql, record, change: Change, now: datetime, queued_at: datetime) -> None:
    decision, inbound = change.decision, change.inbound
    seen = decision.interaction
    exp, conv, funnel = record.experience_id, record.id, record.funnel_id
    if inbound is not None:
        text = storable_text(inbound.text)
        if seen is None:  # the engine took no notice: still recorded, so it is processed once
            row = (exp, conv, inbound.message_id, funnel, record.block, text, "ignored", None,
                   0, None, "", now)
        else:
            row = (exp, conv, inbound.message_id, funnel, seen.block, text, seen.classification,
                   seen.option, seen.attempt, seen.action, seen.how, now)
        if sql.insert_id(sql.interaction, row) is None:
            raise Duplicate()
    if decision.draws:
        sql.interaction.execute(*[(exp, conv, None, funnel, block, "", "split", branch, 0, None,
                                   "split", now) for block, branch in decision.draws])
    if decision.entered:
        sql.visit.execute(*[(exp, conv, funnel, block, now) for block in decision.entered])
    if decision.messages:
        sql.outbound.execute(*[(exp, conv, "out", record.user_id, text, "pending", queued_at,
                                idempotency_key(), queued_at) for text in decision.messages])


def effect_rows(effects, last_replies) -> list[tuple[str, dict]]:
    """(kind, payload) of the hook calls a decision's effects owe; `last_replies()` gives
    the member's last messages for an owner notification."""
    rows = []
    for effect in effects:
        if isinstance(effect, NotifyOwner):
            # the member's words as they were when the owner had to be told
            rows.append(("owner_notify", {"reason": effect.reason, "block": effect.block,
                                          "last_replies": last_replies()}))
        elif isinstance(effect, Ended):
            if effect.reason == "timeout":
                rows.append(("timeout", {}))
            rows.append(("conversation_end", {"status": effect.status, "reason": effect.reason}))
    return rows


def _owe(sql, record, decision: Decision, due: datetime) -> list[int]:
    rows = effect_rows(decision.effects, lambda: sql.last_replies(record.id, LAST_REPLIES))
    if not rows:
        return []
    values = [(record.experience_id, record.id, kind, payload, due) for kind, payload in rows]
    if sql.engine == "mysql":  # ids of a multi-row insert are not promised to be contiguous
        return [sql.insert_id(sql.effect, v) for v in values]
    return sql.insert_ids(sql.effect, values)


def idempotency_key() -> str:
    """32 hex digits, like `uuid4().hex`, but time-ordered (UUIDv7-style: the milliseconds
    first, then 80 random bits), so new outbox rows land at the end of the unique index
    instead of on random pages: fewer pages written per commit. Unique across databases."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"

