"""The periodic sweep: timeouts in batches of set-based statements (several sweepers
share the work), then the reminders due, then any hook calls a crash left behind.

Expiry needs no plugin code (its ending is the same for every conversation), so the
store ends a whole batch in a few statements. A reminder is rendered per conversation
(plugins' template variables may be involved), outside any transaction, then written
with a revision check: a conversation the member moved meanwhile is simply skipped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from ..conversation.engine import Context
from ..storage.records import to_state


@dataclass
class SweepResult:
    ended: Counter = field(default_factory=Counter)  # experience_id -> conversations ended
    reminded: int = 0
    hooks_recovered: int = 0

    @property
    def total(self) -> int:
        return sum(self.ended.values())


def sweep(host, now: datetime | None = None) -> SweepResult:
    """End expired conversations, send due reminders, fire hook calls left by a crash.

    `now` only decides what is expired or due a reminder (`whopfunnel sweep --now`);
    the messages it queues are due at the real time.
    """
    now = now or host.clock.now()
    result = SweepResult()
    result.hooks_recovered = host.fire_due()
    status, reason = "abandoned", "timeout"  # Engine.timeout_decision's ending
    while True:
        ended = host.store.end_expired(now, host.batch_size, status=status, reason=reason,
                                       effects_due=host.clock.now())
        for _, experience_id in ended:
            result.ended[experience_id] += 1
        if ended and host.hooks == "inline":
            host.fire_due()
        if len(ended) < host.batch_size:
            break
    if host.reminder:
        while True:
            due = host.store.due_reminders(now, host.batch_size)
            changes = []
            for record in due:
                ctx = Context(record.user_id, record.experience_id, record.user_name,
                              host.plugin_vars(lambda r=record: host.snapshot(r)))
                decision = host.engine_for(record.funnel_version_id).tick(to_state(record), ctx, now)
                changes.append(host._change(decision, record=record))
            written = host.store.write_each(changes, now=now, queued_at=host.clock.now(),
                                            effects_due=host.clock.now()) if changes else []
            done = sum(w.status == "ok" for w in written)
            result.reminded += done
            if len(due) < host.batch_size or not done:
                break
    return result
