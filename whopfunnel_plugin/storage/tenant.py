"""Reads scoped to one experience: what admin commands, `chat` and tests look at.

Nothing here can reach another tenant's rows: every query names the experience.
"""

from __future__ import annotations


class Tenant:
    def __init__(self, store, experience_id: str):
        self.store = store
        self.experience_id = experience_id

    def __repr__(self) -> str:
        return f"Tenant({self.experience_id!r})"

    def _records(self, where=None, order=None, limit: int | None = None) -> list:
        c = self.store.models.conversation
        query = c.select(*c._meta.sorted_fields).where(c.experience_id == self.experience_id)
        if where is not None:
            query = query.where(where)
        query = query.order_by(*(order or (c.id,)))
        if limit is not None:
            query = query.limit(limit)
        return self.store.read(lambda: self.store.sql.records(query))

    def conversations(self, *, status: str | None = None, user_id: str | None = None,
                      limit: int | None = None) -> list:
        """This tenant's conversations (records), oldest first."""
        c = self.store.models.conversation
        where = None
        if status is not None:
            where = c.status == status
        if user_id is not None:
            where = (c.user_id == user_id) if where is None else where & (c.user_id == user_id)
        return self._records(where, limit=limit)

    def conversation(self, conversation_id: int):
        return self.store.conversation(self.experience_id, conversation_id)

    def active(self, user_id: str):
        return self.store.active(self.experience_id, user_id)

    def latest(self, user_id: str):
        c = self.store.models.conversation
        found = self._records(c.user_id == user_id, order=(c.id.desc(),), limit=1)
        return found[0] if found else None

    def messages(self, conversation_id: int | None = None, *, direction: str | None = None) -> list:
        """Stored messages (both directions, unless `direction`), oldest first."""
        m = self.store.models.message
        query = m.select().where(m.experience_id == self.experience_id)
        if conversation_id is not None:
            query = query.where(m.conversation == conversation_id)
        if direction is not None:
            query = query.where(m.direction == direction)
        return self.store.read(lambda: list(query.order_by(m.id)))

    def pending_outbound(self, conversation_id: int | None = None) -> list:
        """The member's outbox, oldest first: the order members must receive messages in."""
        return [r for r in self.messages(conversation_id, direction="out")
                if r.status == "pending" and r.recipient == "member"]

    def interactions(self, conversation_id: int | None = None) -> list:
        i = self.store.models.interaction
        query = i.select().where(i.experience_id == self.experience_id)
        if conversation_id is not None:
            query = query.where(i.conversation == conversation_id)
        return self.store.read(lambda: list(query.order_by(i.id)))
