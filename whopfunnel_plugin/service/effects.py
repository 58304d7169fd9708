"""Hook calls owed after a commit: on_timeout, on_conversation_end, on_owner_notify.

They are written in the same transaction as the state change that owes them, fired
after the commit, and deleted once fired. Each is claimed with a lease first, so two
processes never fire the same one, and one whose process died before firing it is
fired by a later sweep: late, never lost.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from ..conversation.engine import Decision, Ended, NotifyOwner
from ..storage import store as s

log = logging.getLogger("whopfunnel")
LEASE = timedelta(minutes=5)  # a claimed hook call is fired again after this if never finished
MAX_ATTEMPTS = 10
LAST_REPLIES = 5


class Effects:
    def __init__(self, store: s.Store, host):
        self.store = store
        self.host = host  # for its callbacks and conversation snapshots

    def owe(self, row: s.ConversationRow, decision: Decision, now: datetime,
            due_now: bool = False) -> list[int]:
        """Record the hook calls a decision owes; `due_now` leaves them to `due()` pollers."""
        ids = []
        for effect in decision.effects:
            kinds = []
            if isinstance(effect, NotifyOwner):
                # the member's words as they were when the owner had to be told
                kinds.append(("owner_notify", {"reason": effect.reason, "block": effect.block,
                                               "last_replies": self._last_replies(row)}))
            elif isinstance(effect, Ended):
                if effect.reason == "timeout":
                    kinds.append(("timeout", {}))
                kinds.append(("conversation_end", {"status": effect.status, "reason": effect.reason}))
            for kind, payload in kinds:
                ids.append(s.EffectRow.insert(
                    experience_id=row.experience_id, conversation=row.id, kind=kind,
                    payload=json.dumps(payload), due_at=now if due_now else now + LEASE).execute())
        return ids

    def due(self, now: datetime) -> list[int]:
        e = s.EffectRow
        return [r.id for r in e.select(e.id).where(e.due_at <= now).order_by(e.id)]

    def fire(self, effect_ids, now: datetime) -> int:
        fired = 0
        callbacks = self.host.callbacks
        for effect_id in effect_ids:
            row = self._claim(effect_id, now)
            if row is None:
                continue
            conv = self.host.view_of(row.conversation)
            payload = json.loads(row.payload)
            try:
                if row.kind == "timeout":
                    callbacks.on_timeout(conversation=conv)
                elif row.kind == "conversation_end":
                    callbacks.on_conversation_end(conversation=conv)
                elif row.kind == "owner_notify":
                    callbacks.on_owner_notify(conversation=conv, reason=payload["reason"],
                                              block=payload["block"],
                                              last_replies=payload["last_replies"])
            except Exception:
                # Third-party failures are contained by the plugin manager; what escapes
                # is built-in work failing (the database): try again later.
                if row.attempts + 1 < MAX_ATTEMPTS:
                    log.exception("hook call %s for conversation %s failed; will retry",
                                  row.kind, conv.id)
                    delay = timedelta(seconds=30 * 2 ** row.attempts)
                    s.EffectRow.update(due_at=now + delay).where(s.EffectRow.id == row.id).execute()
                    continue
                log.exception("hook call %s for conversation %s failed %d times; giving up",
                              row.kind, conv.id, MAX_ATTEMPTS)
            s.EffectRow.delete().where(s.EffectRow.id == row.id).execute()
            fired += 1
        return fired

    def _claim(self, effect_id: int, now: datetime):
        """Take a lease on one owed hook call; None when another process has it."""
        e = s.EffectRow
        row = e.get_or_none(e.id == effect_id)
        if row is None:
            return None
        claimed = (e.update(due_at=now + LEASE, attempts=e.attempts + 1)
                   .where((e.id == effect_id) & (e.due_at == row.due_at)).execute())
        return row if claimed == 1 else None

    def _last_replies(self, conv: s.ConversationRow) -> list[str]:
        m = s.MessageRow
        rows = self.store.tenant(conv.experience_id).messages(conv.id).where(m.direction == "in")
        return [r.text for r in rows.order_by(m.id.desc()).limit(LAST_REPLIES)][::-1]
