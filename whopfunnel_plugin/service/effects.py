"""Firing the hook calls a committed change owes: on_timeout, on_conversation_end,
on_owner_notify.

The store hands out owed calls under a claim (see `storage/effects.py`): across any
number of workers each call is fired by one of them, and a conversation's calls fire in
the order their changes committed. The lease is renewed while the hooks run. Once they
have run, the call is settled in one transaction: it is deleted (or, when built-in work
failed, scheduled again), together with what built-in hooks staged meanwhile (the owner
notifier's outbox row). If the database is down then, the settlement is kept in memory,
the lease kept alive, and it is retried first thing at the next firing: the hooks do not
run again. Only a worker that dies mid-call leaves it to be fired again when its lease
runs out: at least once across crashes, exactly once otherwise.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

log = logging.getLogger("whopfunnel")
MAX_ATTEMPTS = 10
BATCH = 500


class HookCalls:
    def __init__(self, store, callbacks, clock, keeper, snapshot):
        self.store = store
        self.callbacks = callbacks
        self.clock = clock
        self.keeper = keeper
        self.snapshot = snapshot  # record -> Conversation
        self._staged = threading.local()
        self._lock = threading.Lock()
        self._unsettled: list[tuple] = []  # (owed, retry at or None, staged writes)

    def stage(self, write) -> bool:
        """Hold a built-in hook's database write until its call is settled; False when no
        call is being fired in this thread (the caller then writes it itself)."""
        writes = getattr(self._staged, "writes", None)
        if writes is None:
            return False
        writes.append(write)
        return True

    def fire(self, ids=None) -> int:
        """Fire the given owed calls (a committing thread firing its own), or every due one."""
        self.settle()
        if ids is not None and not ids:
            return 0
        fired, left = 0, None if ids is None else set(ids)
        while True:
            now = self.clock.now()
            # Given ids are claimed in rounds: only the oldest call owed for a conversation
            # is claimable, the next one once that one is settled.
            owed = self.store.effects.claim(now, self.keeper.until(),
                                            ids=None if left is None else sorted(left), limit=BATCH)
            if not owed:
                return fired
            if left is not None:
                left -= {o.id for o in owed}
            tokens = self.keeper.hold("effects", {o.token for o in owed})
            outcomes = [self._call(o) for o in owed]
            with self._lock:
                self._unsettled += outcomes
            self.keeper.drop("effects", tokens)
            if not self.settle():
                return fired  # the database is away: what ran is settled when it is back
            fired += sum(retry is None for _, retry, _ in outcomes)
            if left is not None and not left:
                return fired
            # Due calls: round after round, as settling one makes its conversation's next
            # call claimable; until nothing due is left.

    def settle(self) -> bool:
        """Settle every call whose hooks ran (delete it, or schedule its retry, with what it
        staged); True when nothing is left unsettled."""
        with self._lock:
            pending, self._unsettled = self._unsettled, []
        if not pending:
            return True
        tokens = self.keeper.hold("effects", {o.token for o, _, _ in pending})

        def run():
            for _, _, writes in pending:
                for write in writes:
                    write()
            self.store.effects.finish_in([o for o, retry, _ in pending if retry is None])
            for o, retry, _ in pending:
                if retry is not None:
                    self.store.effects.retry_in(o, retry)

        try:
            self.store.transaction(run)
        except Exception as exc:  # noqa: BLE001 - kept, and tried again at the next firing
            with self._lock:
                self._unsettled = pending + self._unsettled
            log.warning("%d hook calls ran but could not be recorded as done (%s); their "
                        "leases are kept and they are recorded when the database is back",
                        len(pending), str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return False  # the tokens stay held: the keeper renews them once it can
        self.keeper.drop("effects", tokens)
        return True

    def _call(self, owed) -> tuple:
        """Run one call's hooks; (owed, when to retry or None, the writes it staged)."""
        conv = self.snapshot(owed.conversation)
        payload = owed.payload
        self._staged.writes = []
        try:
            if owed.kind == "timeout":
                self.callbacks.on_timeout(conversation=conv)
            elif owed.kind == "conversation_end":
                self.callbacks.on_conversation_end(conversation=conv)
            elif owed.kind == "owner_notify":
                self.callbacks.on_owner_notify(conversation=conv, reason=payload["reason"],
                                               block=payload["block"],
                                               last_replies=payload["last_replies"])
        except Exception:  # built-in work failed (third-party failures are contained)
            if owed.attempts < MAX_ATTEMPTS:
                delay = timedelta(seconds=30 * 2 ** (owed.attempts - 1))
                log.exception("hook call %s for conversation %s failed; retrying in %ds",
                              owed.kind, conv.id, delay.total_seconds())
                return owed, self.clock.now() + delay, []
            log.exception("hook call %s for conversation %s failed %d times; giving up",
                          owed.kind, conv.id, MAX_ATTEMPTS)
        finally:
            writes, self._staged.writes = self._staged.writes, None
        return owed, None, writes
