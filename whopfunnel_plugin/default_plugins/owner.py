"""Tell the company owner: a DM through the Whop API plus a Whop notification.

Fires from the pending-effects table, so it runs at most once per conversation under
normal operation; if Whop is unreachable the call raises and is retried later, and the
fixed Idempotency-Key keeps a retried DM from arriving twice.
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
        company = conversation.company_id
        if not company:
            log.warning("conversation %s has no company id; cannot find an owner to notify",
                        conversation.id)
            return
        client = self.runtime.client
        owner = client.company_owner_id(company)
        text = owner_message(conversation, reason, block, last_replies)
        channel = client.open_dm_channel(owner, company)
        key = f"wf-owner-{conversation.experience_id}-{conversation.id}"[:64]
        client.send_message(channel, text, idempotency_key=key)
        title = "Member needs a person" if reason == "handoff" else "Member needs help"
        client.post_notification(company, title, text.splitlines()[0], user_ids=[owner])
