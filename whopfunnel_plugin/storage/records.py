"""A conversation row as read (`Record`), and the one place it turns into the engine's
`State`, the hooks' `Conversation` snapshot, and back into the columns an UPDATE writes.

The column list lives in the model (`models.py`) alone: the record type is made from
it, and every conversion goes by field name, so adding a column means adding it once.
"""

from __future__ import annotations

from dataclasses import fields, make_dataclass
from datetime import datetime
from types import MappingProxyType

from ..conversation.engine import State
from ..events import Conversation

STATE_FIELDS = tuple(f.name for f in fields(State))
SNAPSHOT_FIELDS = tuple(f.name for f in fields(Conversation) if f.name != "funnel_version")
# Besides the engine's state, an update moves these: who holds the active slot, when it
# ended, the DM channel once known, when a reminder is due, and the revision every write
# checks and bumps.
UPDATE_FIELDS = (*STATE_FIELDS, "active_user", "ended_at", "channel_id", "remind_at",
                 "revision")


def record_type(model) -> type:
    """A frozen record class with one attribute per column of `model` (foreign keys by
    their column name, e.g. `funnel_version_id`)."""
    names = [f.column_name if f.name != f.column_name else f.name
             for f in model._meta.sorted_fields]
    return make_dataclass("ConversationRecord", names, frozen=True, slots=True,
                          namespace={"evolve": _evolve, "__doc__": "A conversations row."})


def _evolve(record, **changes):
    """A copy with `changes` (cheaper than dataclasses.replace on the hot path)."""
    cls = type(record)
    return cls(*[changes[n] if n in changes else getattr(record, n) for n in cls.__slots__])


def to_state(record) -> State:
    values = {name: getattr(record, name) for name in STATE_FIELDS}
    values["variables"] = MappingProxyType(dict(record.variables))
    return State(**values)


def to_snapshot(record, version: str) -> Conversation:
    values = {name: getattr(record, name) for name in SNAPSHOT_FIELDS}
    values["variables"] = dict(record.variables)
    return Conversation(funnel_version=version, **values)


def update_values(record, state: State, now: datetime, remind_at: datetime | None) -> dict:
    """The columns that writing `state` over `record` changes (UPDATE_FIELDS)."""
    values = {name: getattr(state, name) for name in STATE_FIELDS}
    values["variables"] = dict(state.variables)
    values["active_user"] = record.user_id if state.active else None
    values["ended_at"] = record.ended_at or (None if state.active else now)
    values["channel_id"] = record.channel_id
    values["remind_at"] = remind_at
    values["revision"] = record.revision + 1
    return values
