"""Tell the company owner: a DM through the Whop API plus a Whop notification.

The hook only queues the message in the conversation's owner queue of the outbox (no
network here), so it cannot fail halfway and is never re-run for a retry: the outbox
dispatcher delivers it like any other message, retried with backoff, never dropped,
with one fixed Idempotency-Key per notification.
"""

from __future__ import annotations

import logging

from ..hookspecs import hookimpl

log = logging.getLogger("whopfunnel.owner")


def owner_message(conversation, reason, block, last_replies) -> str:
    who = conversation.user_name or conversation.user_id
    why = "asked for a person" if reason == "handoff" else "needs help"
    lines = [f"whopfunnel: member {who} ({conversation.user_id}) {why} in funnel "
             f"{conversation.funnel_id!r} at block {block!r} (experience {conversation.experience_id})."]
    if last_replies:
        lines.append("Last replies:")
        lines += [f"> {text[:200]}" for text in last_replies]
    return "\n".join(lines)


class OwnerNotifier:
    def __init__(self, runtime):
        self.runtime = runtime

    def __repr__(self) -> str:
        return "OwnerNotifier()"

    @hookimpl
    def on_owner_notify(self, conversation, reason, block, last_replies):
        if not conversation.company_id:
            log.warning("conversation %s has no company id; cannot find an owner to notify",
                        conversation.id)
            return
        store = self.runtime.store
        calls = self.runtime.host.calls
        write = store.outbox.queue_owner(
            conversation, text=owner_message(conversation, reason, block, last_replies),
            title="Member needs a person" if reason == "handoff" else "Member needs help",
            # One row per (conversation, reason): a hook call repeated after a crash finds
            # the row already there. The database's instance id makes the key unique
            # across databases sharing one Whop API key (staging, a recreated database).
            key=f"wf-owner-{store.instance_id}-{conversation.id}-{reason}",
            now=self.runtime.clock.now(), staged=True)
        # Written with the hook call's own bookkeeping, in one transaction: if the database
        # is down then, it is retried from memory and the hooks do not run again.
        if not calls.stage(write):
            store.transaction(write)  # called outside a hook call whopfunnel fires
