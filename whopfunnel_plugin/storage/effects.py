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
              limit: int = 500) -> list[Owed]:
        """Claim owed calls: the given `ids` if nobody has them yet (the committing thread
        firing its own), or else up to `limit` that are due (by any worker)."""
        if ids is not None and not ids:
            return []
        token, bulk = new_token(), self.store.bulk
        if ids is None and not self.store.read(lambda: bulk.any_due(now)):
            return []

        def run():
            rows = bulk.claim_effects(token, until, now, ids, limit)
            records = bulk.records(row[1] for row in rows)
            return [Owed(i, kind, payload, attempts, records[conv], token)
                    for i, conv, kind, payload, attempts in rows]

        return self.store.transaction(run)

    def finish(self, owed: Iterable[Owed]) -> None:
        """Fired: forget them (only those still under our claims)."""
        self.store.transaction(lambda: self.finish_in(owed))

    def finish_in(self, owed: Iterable[Owed]) -> None:
        """`finish`, inside a transaction the caller holds."""
        by_token: dict[str, list[int]] = {}
        for o in owed:
            by_token.setdefault(o.token, []).append(o.id)
        for token, ids in by_token.items():
            self.store.bulk.finish_effects(token, ids)

    def retry_later(self, owed: Owed, at: datetime) -> None:
        self.store.transaction(lambda: self.retry_in(owed, at))

    def retry_in(self, owed: Owed, at: datetime) -> None:
        """`retry_later`, inside a transaction the caller holds."""
        e = self._e
        e.update(due_at=at, claimed_by=None).where(
            (e.id == owed.id) & (e.claimed_by == owed.token)).execute()

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
