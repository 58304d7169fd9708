"""Hook calls owed after a commit (on_timeout, on_conversation_end, on_owner_notify).

They are written in the same transaction as the state change that owes them (see
`writes.py`). To fire one, a worker claims it: one UPDATE that takes only calls that
are due and unclaimed or whose lease ran out, setting a fresh token, so two workers
never hold the same call. The holder renews its lease while its hooks run and deletes
the call once fired; a worker that dies leaves it to be taken over when the lease ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from .outbox import new_token


@dataclass(frozen=True)
class Owed:
    id: int
    kind: str
    payload: dict
    attempts: int  # claims so far, this one included
    conversation: object  # the conversation's record, as it is now
    token: str


class EffectQueue:
    def __init__(self, store):
        self.store = store

    @property
    def _e(self):
        return self.store.models.effect

    def claim(self, now: datetime, until: datetime, *, ids: Sequence[int] | None = None,
              limit: int = 100) -> list[Owed]:
        """Claim owed calls: the given `ids` if nobody has them yet (the committing thread
        firing its own), or else up to `limit` that are due (by any worker)."""
        e, token = self._e, new_token()
        if ids is not None:
            if not ids:
                return []
            where = e.id.in_(list(ids)) & e.claimed_by.is_null()
            query = e.update(claimed_by=token, due_at=until, attempts=e.attempts + 1).where(where)
        elif self.store.engine == "mysql":  # no subquery on the updated table; LIMIT instead
            query = (e.update(claimed_by=token, due_at=until, attempts=e.attempts + 1)
                     .where(e.due_at <= now).order_by(e.id).limit(limit))
        else:
            due = e.select(e.id).where(e.due_at <= now).order_by(e.id).limit(limit)
            if self.store.engine == "postgres":
                due = due.for_update("FOR UPDATE SKIP LOCKED")
            query = (e.update(claimed_by=token, due_at=until, attempts=e.attempts + 1)
                     .where(e.id.in_(due)))

        def run():
            if query.execute() == 0:
                return []
            rows = list(e.select().where(e.claimed_by == token).order_by(e.id))
            sql = self.store.sql
            found = []
            for row in rows:
                record = sql.one(sql.by_id_sql, (row.conversation_id,))
                found.append(Owed(row.id, row.kind, row.payload, row.attempts, record, token))
            return found

        return self.store.transaction(run)

    def finish(self, owed: Iterable[Owed]) -> None:
        """Fired: forget them (only those still under our claims)."""
        e = self._e
        pairs = [(o.id, o.token) for o in owed]
        if not pairs:
            return
        tokens = {t for _, t in pairs}
        query = e.delete().where(e.id.in_([i for i, _ in pairs]) & e.claimed_by.in_(list(tokens)))
        self.store.transaction(query.execute)

    def retry_later(self, owed: Owed, at: datetime) -> None:
        e = self._e
        query = e.update(due_at=at, claimed_by=None).where(
            (e.id == owed.id) & (e.claimed_by == owed.token))
        self.store.transaction(query.execute)

    def renew(self, tokens, until: datetime) -> int:
        e, tokens = self._e, list(tokens)
        if not tokens:
            return 0
        return self.store.transaction(
            e.update(due_at=until).where(e.claimed_by.in_(tokens)).execute)

    def release(self, tokens, now: datetime) -> int:
        e, tokens = self._e, list(tokens)
        if not tokens:
            return 0
        return self.store.transaction(
            e.update(due_at=now, claimed_by=None).where(e.claimed_by.in_(tokens)).execute)

    def pending(self) -> int:
        return self.store.read(self._e.select().count)
