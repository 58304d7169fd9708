"""Firing the hook calls a committed change owes: on_timeout, on_conversation_end,
on_owner_notify.

The store hands out owed calls under a claim (see `storage/effects.py`), so across any
number of workers each call is fired by one of them; the lease is renewed while the
hooks run, and a call is deleted once fired. A worker that dies mid-call leaves it to
be fired again when its lease runs out: at least once across crashes, exactly once
otherwise. Third-party failures are contained by the plugin manager; what escapes here
is built-in work failing (the database), retried with backoff.
"""

from __future__ import annotations

import logging
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

    def fire(self, ids=None) -> int:
        """Fire the given owed calls (a committing thread firing its own), or every due one."""
        if ids is not None and not ids:
            return 0
        fired = 0
        while True:
            now = self.clock.now()
            owed = self.store.effects.claim(now, self.keeper.until(), ids=ids, limit=BATCH)
            if not owed:
                return fired
            with self.keeper.holding("effects", {o.token for o in owed}):
                done = [o for o in owed if self._call(o)]
                self.store.effects.finish(done)
            fired += len(done)
            if ids is not None or len(owed) < BATCH:
                return fired

    def _call(self, owed) -> bool:
        """Run one call's hooks; False when it must be retried later."""
        conv = self.snapshot(owed.conversation)
        payload = owed.payload
        try:
            if owed.kind == "timeout":
                self.callbacks.on_timeout(conversation=conv)
            elif owed.kind == "conversation_end":
                self.callbacks.on_conversation_end(conversation=conv)
            elif owed.kind == "owner_notify":
                self.callbacks.on_owner_notify(conversation=conv, reason=payload["reason"],
                                               block=payload["block"],
                                               last_replies=payload["last_replies"])
        except Exception:
            if owed.attempts < MAX_ATTEMPTS:
                delay = timedelta(seconds=30 * 2 ** (owed.attempts - 1))
                log.exception("hook call %s for conversation %s failed; retrying in %ds",
                              owed.kind, conv.id, delay.total_seconds())
                self.store.effects.retry_later(owed, self.clock.now() + delay)
                return False
            log.exception("hook call %s for conversation %s failed %d times; giving up",
                          owed.kind, conv.id, MAX_ATTEMPTS)
        return True
