"""The outbox: outbound messages waiting to be sent, claimed one at a time.

Each conversation has two queues (lanes), to the member and to the owner; only the
oldest open message of a lane may be sent, so a member never sees replies out of order.
A message is claimed for one send with a token and a short lease (`next_attempt_at`
holds the lease's expiry while claimed). The worker renews the leases it holds while
it works; if it dies, the lease runs out within seconds and any worker takes the
message over, with the same Idempotency-Key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from peewee import fn

OPEN = ("pending", "failed")
LANES = ("member", "owner")


@dataclass(frozen=True)
class Queued:
    """An outbox message, as the dispatcher needs it."""

    id: int
    experience_id: str
    conversation_id: int
    recipient: str
    text: str
    title: str | None
    attempts: int
    status: str
    idempotency_key: str
    next_attempt_at: datetime


def new_token() -> str:
    return os.urandom(8).hex()


class Outbox:
    def __init__(self, store):
        self.store = store

    @property
    def _m(self):
        return self.store.models.message

    def due(self, now: datetime, limit: int) -> list[int]:
        """Conversations whose oldest open message in some lane is due, oldest first."""
        m = self._m
        older = m.alias()
        # Only the head of each lane can go; the ones queued behind a failing head must
        # not fill the batch and starve other conversations.
        head = ~fn.EXISTS(older.select(older.id).where(
            (older.conversation == m.conversation) & (older.recipient == m.recipient)
            & (older.direction == "out") & (older.status.in_(OPEN)) & (older.id < m.id)))
        query = (m.select(m.conversation).where(
            (m.direction == "out") & (m.status.in_(OPEN)) & (m.next_attempt_at <= now) & head)
            .order_by(m.id).limit(limit))
        rows = self.store.read(lambda: [r.conversation_id for r in query])
        return list(dict.fromkeys(rows))

    def heads(self, conversation_id: int) -> dict[str, Queued]:
        """The oldest open message of each of a conversation's lanes (due or not), by lane:
        one prebuilt statement, since it runs after every embedded reply."""
        sql = self.store.sql
        rows = self.store.read(
            lambda: sql.db.execute_sql(sql.heads_sql, (conversation_id, conversation_id)).fetchall())
        return {lane: Queued(mid, exp, conversation_id, lane, text, title, attempts, status, key,
                             sql.next_attempt(due))
                for mid, lane, text, title, attempts, status, key, due, exp in rows}

    def head(self, conversation_id: int, lane: str) -> Queued | None:
        """The oldest open message of a conversation's lane (due or not)."""
        return self.heads(conversation_id).get(lane)

    def claim(self, message: Queued, now: datetime, until: datetime) -> str | None:
        """Take a due message for one send; the claim token, or None if it is not due
        (waiting, or another worker's live lease)."""
        m, token = self._m, new_token()
        query = m.update(next_attempt_at=until, claimed_by=token).where(
            (m.id == message.id) & m.status.in_(OPEN) & (m.next_attempt_at <= now))
        return token if self.store.transaction(query.execute) == 1 else None

    def mark_sent(self, message_id: int, token: str, whop_message_id: str | None,
                  now: datetime) -> None:
        """Delivered. (Only under our claim: a worker presumed dead must not overwrite
        what the next one did.)"""
        m = self._m
        query = m.update(status="sent", whop_message_id=whop_message_id, sent_at=now,
                         attempts=m.attempts + 1, claimed_by=None).where(
            (m.id == message_id) & (m.claimed_by == token))
        self.store.transaction(query.execute)

    def retry_later(self, message_id: int, token: str, *, at: datetime, error: str,
                    status: str, count_attempt: bool = True) -> None:
        """Not delivered this time: due again `at`, the claim released."""
        m = self._m
        values = {"last_error": error, "status": status, "next_attempt_at": at, "claimed_by": None}
        if count_attempt:
            values["attempts"] = m.attempts + 1
        query = m.update(**values).where((m.id == message_id) & (m.claimed_by == token))
        self.store.transaction(query.execute)

    def renew(self, tokens, until: datetime) -> int:
        """Extend the leases of messages still claimed by these tokens."""
        m, tokens = self._m, list(tokens)
        if not tokens:
            return 0
        query = m.update(next_attempt_at=until).where(m.claimed_by.in_(tokens) & m.status.in_(OPEN))
        return self.store.transaction(query.execute)

    def release(self, tokens, now: datetime) -> int:
        """Give claims back at once (a clean shutdown): due now for any worker."""
        m, tokens = self._m, list(tokens)
        if not tokens:
            return 0
        query = m.update(next_attempt_at=now, claimed_by=None).where(
            m.claimed_by.in_(tokens) & m.status.in_(OPEN))
        return self.store.transaction(query.execute)

    def recipient(self, conversation_id: int):
        """The conversation a message goes to (member, company, channel), as a record."""
        sql = self.store.sql
        return self.store.read(lambda: sql.one(sql.by_id_sql, (conversation_id,)))

    def remember_channel(self, conversation_id: int, channel_id: str) -> None:
        c = self.store.models.conversation
        query = c.update(channel_id=channel_id).where(
            (c.id == conversation_id) & (c.channel_id.is_null()))
        self.store.transaction(query.execute)

    def queue_owner(self, conversation, *, text: str, title: str, key: str, now: datetime,
                    staged: bool = False):
        """Queue a DM (and Whop notification) to the owner in the conversation's owner lane;
        a second call with the same `key` finds the row already there. `staged`: return
        the write instead, to run inside a transaction the caller opens."""
        m = self._m
        query = m.insert(
            experience_id=conversation.experience_id, conversation=conversation.id,
            direction="out", user_id=conversation.user_id, recipient="owner", text=text,
            title=title, status="pending", next_attempt_at=now, created_at=now,
            idempotency_key=key,
        ).on_conflict_ignore()
        if staged:
            return query.execute
        self.store.transaction(query.execute)
        return None

    def requeue_failed(self, now: datetime, experience_id: str | None = None) -> int:
        """Make every `failed` message due now again (admin `retry-failed`)."""
        m = self._m
        where = (m.direction == "out") & (m.status == "failed")
        if experience_id is not None:
            where &= m.experience_id == experience_id
        query = m.update(status="pending", next_attempt_at=now).where(where & m.claimed_by.is_null())
        return self.store.transaction(query.execute)

    def backlog(self, now: datetime) -> dict:
        """Pending and failed outbound messages, and the age in seconds of the oldest."""
        m = self._m
        query = (m.select(m.status, fn.COUNT(m.id).alias("n"), fn.MIN(m.created_at).alias("oldest"))
                 .where((m.direction == "out") & m.status.in_(OPEN)).group_by(m.status))
        rows = self.store.read(lambda: list(query.namedtuples()))
        found = {"pending": 0, "failed": 0, "oldest_seconds": 0.0}
        oldest = None
        for row in rows:
            found[row.status] = row.n
            when = m.created_at.python_value(row.oldest)
            oldest = when if oldest is None or (when and when < oldest) else oldest
        if oldest is not None:
            found["oldest_seconds"] = max(0.0, (now - oldest).total_seconds())
        return found
