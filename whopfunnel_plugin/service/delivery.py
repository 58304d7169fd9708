"""The outbox dispatcher: delivers pending outbound messages through the Whop client.

Per conversation, strictly oldest first: a message that fails holds back the ones
after it, so a member never sees replies out of order. Each message is claimed with a
short lease before sending (several workers may run), sent with its stored
Idempotency-Key (a resend after a crash is deduplicated by Whop), and marked sent. A
message that keeps failing is retried with capped backoff forever; after
`alert_after` failures it is marked `failed` (still retried) and `on_delivery_failed`
fires once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import fn

from ..errors import WhopAPIError
from ..storage import store as s

log = logging.getLogger("whopfunnel.outbox")
# A claim must outlast one whole send (open channel, send, maybe a notification, each
# with the client's retries and Retry-After waits), or a second worker would send too.
CLAIM = timedelta(minutes=10)
MAX_BACKOFF = timedelta(hours=1)
OPEN = ("pending", "failed")
LANES = ("member", "owner")  # each conversation has two queues: to the member, to the owner


@dataclass
class DeliveryResult:
    sent: int = 0
    failed: int = 0


class Dispatcher:
    def __init__(self, store: s.Store, client, clock, *, alert_after: int = 5,
                 on_failed: Callable[..., None] | None = None, batch_size: int = 200):
        self.store = store
        self.client = client
        self.clock = clock
        self.alert_after = alert_after
        self.on_failed = on_failed
        self.batch_size = batch_size

    def run_once(self) -> DeliveryResult:
        """Deliver every due message (one pass), conversation by conversation."""
        now = self.clock.now()
        m, older = s.MessageRow, s.MessageRow.alias()
        # Only the oldest unsent message of each queue can go; the ones queued behind a
        # failing head must not fill the batch and starve other conversations.
        head = ~fn.EXISTS(older.select(older.id).where(
            (older.conversation == m.conversation) & (older.recipient == m.recipient)
            & (older.direction == "out") & (older.status.in_(OPEN)) & (older.id < m.id)))
        due = (m.select(m.conversation).where(
            (m.direction == "out") & (m.status.in_(OPEN)) & (m.next_attempt_at <= now) & head)
            .order_by(m.id).limit(self.batch_size))
        result = DeliveryResult()
        for conversation_id in dict.fromkeys(row.conversation_id for row in due):
            part = self.deliver(conversation_id)
            result.sent += part.sent
            result.failed += part.failed
        return result

    def deliver(self, conversation_id: int) -> DeliveryResult:
        """Send a conversation's queued messages in order, each queue until one fails."""
        result = DeliveryResult()
        m = s.MessageRow
        for lane in LANES:
            while True:
                now = self.clock.now()
                head = (m.select().where((m.conversation == conversation_id) & (m.recipient == lane)
                                         & (m.direction == "out") & (m.status.in_(OPEN)))
                        .order_by(m.id).first())
                claim = self._claim(head, now) if head and head.next_attempt_at <= now else None
                if claim is None:
                    break
                if self._send(head, claim):
                    result.sent += 1
                else:
                    result.failed += 1
                    break
        return result

    def _claim(self, message: s.MessageRow, now: datetime) -> datetime | None:
        """Take the message for one send; the claim's expiry doubles as its token."""
        m = s.MessageRow
        until = now + CLAIM
        taken = m.update(next_attempt_at=until).where(
            (m.id == message.id) & (m.next_attempt_at == message.next_attempt_at)
            & (m.status.in_(OPEN))).execute() == 1
        return until if taken else None

    def _send(self, message: s.MessageRow, claim: datetime) -> bool:
        conv = s.ConversationRow.get_by_id(message.conversation_id)
        try:
            if message.recipient == "owner":
                sent = self._send_to_owner(conv, message)
            else:
                sent = self._send_to_member(conv, message)
        except WhopAPIError as exc:
            self._failed(message, conv, str(exc).splitlines()[0][:500], claim)
            return False
        self.store.tenant(conv.experience_id).mark_sent(message, sent.get("id"),
                                                        self.clock.now(), claim=claim)
        return True

    def _send_to_member(self, conv, message) -> dict:
        channel_id = conv.channel_id
        if channel_id is None:
            channel_id = self.client.open_dm_channel(conv.user_id, conv.company_id)
            c = s.ConversationRow
            c.update(channel_id=channel_id).where(
                (c.id == conv.id) & (c.channel_id.is_null())).execute()
        return self.client.send_message(channel_id, message.text,
                                        idempotency_key=message.idempotency_key)

    def _send_to_owner(self, conv, message) -> dict:
        """The owner's DM (and the Whop notification): a resend after a failed notification
        reuses the DM's Idempotency-Key, so the owner still gets one DM."""
        owner = self.client.account_owner_id(conv.company_id)
        channel_id = self.client.open_dm_channel(owner, conv.company_id)
        self.client.send_message(channel_id, message.text, idempotency_key=message.idempotency_key)
        if message.title:
            self.client.post_notification(message.title, message.text.splitlines()[0],
                                          account_id=conv.company_id, user_ids=[owner],
                                          idempotency_key=f"{message.idempotency_key}-notification")
        return {"id": None}  # the member's stored message ids stay the member's own

    def _failed(self, message: s.MessageRow, conv, error: str, claim: datetime) -> None:
        now = self.clock.now()
        attempts = message.attempts + 1
        delay = min(timedelta(seconds=5 * 2 ** min(attempts, 20)), MAX_BACKOFF)
        status = "failed" if attempts >= self.alert_after else "pending"
        m = s.MessageRow
        m.update(attempts=attempts, last_error=error, status=status,
                 next_attempt_at=now + delay).where(
            (m.id == message.id) & (m.next_attempt_at == claim)).execute()
        log.warning("message %s for conversation %s not delivered (attempt %d, retry in %ds): %s",
                    message.id, conv.id, attempts, delay.total_seconds(), error)
        if attempts == self.alert_after and self.on_failed is not None:
            self.on_failed(conversation=conv, text=message.text, error=error, attempts=attempts)
