"""Reads for `whopfunnel conversations` (admin): lists, transcripts, failed messages.

Every query names its tenant, except the two that exist to find one: `experience_of`
(the tenant a conversation id belongs to, so the command can say which it used) and
the cross-tenant list an operator asks for without `--experience` (each row names its
tenant).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from peewee import fn


@dataclass(frozen=True)
class Line:
    """One entry of a transcript: a message, with how the reply was understood."""

    id: int
    at: datetime
    sender: str  # member | bot
    recipient: str  # bot | member | owner
    text: str
    status: str  # in: received; out: pending | sent | failed
    attempts: int = 0
    last_error: str | None = None
    block: str | None = None  # for member replies: the block it answered
    classification: str | None = None  # valid | invalid | ambiguous | late | ignored
    option: int | None = None  # 1-based option chosen
    attempt: int | None = None  # consecutive invalid replies on the block
    step: str | None = None  # the escalation step taken


@dataclass(frozen=True)
class Transcript:
    conversation: object  # the record
    funnel_version: str
    lines: list[Line] = field(default_factory=list)


def conversations(store, *, experience_id: str | None = None, status: str | None = None,
                  user_id: str | None = None, limit: int = 100) -> list:
    """Conversation records, newest first; `experience_id` None lists every tenant's."""
    c = store.models.conversation
    query = c.select(*c._meta.sorted_fields)
    if experience_id is not None:
        query = query.where(c.experience_id == experience_id)
    if status is not None:
        query = query.where(c.status == status)
    if user_id is not None:
        query = query.where(c.user_id == user_id)
    query = query.order_by(c.id.desc()).limit(limit)
    return store.read(lambda: store.sql.records(query))


def experience_of(store, conversation_id: int) -> str | None:
    c = store.models.conversation
    row = store.read(lambda: c.select(c.experience_id).where(c.id == conversation_id).first())
    return row.experience_id if row else None


def transcript(store, experience_id: str, conversation_id: int) -> Transcript:
    """The conversation's messages in the order they happened, each member reply with its
    classification and escalation step. ConversationNotFound outside this tenant."""
    record = store.conversation(experience_id, conversation_id)
    m, i = store.models.message, store.models.interaction

    def read():
        messages = list(m.select().where((m.experience_id == experience_id)
                                         & (m.conversation == conversation_id)).order_by(m.id))
        replies = list(i.select().where((i.experience_id == experience_id)
                                        & (i.conversation == conversation_id)).order_by(i.id))
        return messages, replies

    messages, replies = store.read(read)
    legacy = {r.message_id: r for r in replies if r.message_id is not None}  # schema 1 rows
    lines = []
    for msg in messages:
        how = legacy.get(msg.id)
        inbound = msg.direction == "in"
        lines.append((msg.created_at, 0 if inbound else 1, msg.id, Line(
            id=msg.id, at=msg.created_at, sender="member" if inbound else "bot",
            recipient="bot" if inbound else msg.recipient, text=msg.text, status=msg.status,
            attempts=msg.attempts, last_error=msg.last_error, **_judged(how))))
    for how in replies:  # a member message is stored once, as its interaction
        if how.whop_message_id is None or how.message_id is not None:
            continue  # a split draw, or a schema 1 reply listed above with its message
        lines.append((how.created_at, 0, how.id, Line(
            id=how.id, at=how.created_at, sender="member", recipient="bot", text=how.text,
            status="received", attempts=0, last_error=None, **_judged(how))))
    lines = [line for *_, line in sorted(lines, key=lambda t: t[:3])]
    version = store.stored_funnel(record.funnel_version_id)[0]
    return Transcript(record, version, lines)


def _judged(how) -> dict:
    """How a member message was understood, as transcript fields (bot lines: nothing)."""
    return dict(block=how.block if how else None,
                classification=how.classification if how else None,
                option=None if how is None or how.option_index is None else how.option_index + 1,
                attempt=how.attempt if how and how.classification == "invalid" else None,
                step=how.action if how else None)


def failed_counts(store, experience_id: str | None = None) -> dict[str, int]:
    """Outbound messages in the `failed` state, per tenant."""
    m = store.models.message
    query = (m.select(m.experience_id, fn.COUNT(m.id).alias("n"))
             .where((m.direction == "out") & (m.status == "failed")))
    if experience_id is not None:
        query = query.where(m.experience_id == experience_id)
    query = query.group_by(m.experience_id).order_by(m.experience_id)
    return store.read(lambda: {r.experience_id: r.n for r in query.namedtuples()})
