"""The outbox dispatcher: delivers pending outbound messages through the Whop client.

Per conversation, strictly oldest first: a message that fails holds back the ones
after it, so a member never sees replies out of order. Each message is claimed for one
send with a short lease (renewed while the send runs; a dead worker's lease runs out
within seconds), sent with its stored Idempotency-Key (a resend after a crash is
deduplicated by Whop), and marked sent. A send is one attempt: a wait Whop asks for
(`Retry-After`) or a backoff is scheduled through the outbox, never slept while the
claim is held. A message that keeps failing is retried with capped backoff forever;
after `alert_after` failures it is marked `failed` (still retried) and
`on_delivery_failed` fires once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from ..errors import WhopAPIError
from ..storage import Queued, Store
from .leases import LeaseKeeper

log = logging.getLogger("whopfunnel.outbox")
MAX_BACKOFF = timedelta(hours=1)
PASS_SECONDS = 5.0


@dataclass
class DeliveryResult:
    sent: int = 0
    failed: int = 0


class Dispatcher:
    def __init__(self, store: Store, client, clock, *, alert_after: int = 5,
                 on_failed: Callable[..., None] | None = None, batch_size: int = 200,
                 keeper: LeaseKeeper | None = None,
                 on_send: Callable[[Queued, bool, float], None] | None = None,
                 pass_seconds: float = PASS_SECONDS, monotonic: Callable[[], float] = time.monotonic):
        self.store = store
        self.client = client
        self.clock = clock
        self.alert_after = alert_after
        self.on_failed = on_failed
        self.batch_size = batch_size
        self.keeper = keeper or LeaseKeeper(store, clock)
        self.on_send = on_send  # (message, sent?, seconds): the log line and metrics
        # Set when the service stops: a pass over a long backlog ends after the message in
        # flight (what is left waits in the outbox, for this or another worker).
        self.stopping = threading.Event()
        # A pass ends after this long and the next one reads what is due afresh, so a
        # message a dead worker left (its lease just ran out) never waits behind a long
        # backlog pass, nor do the sweep and hook calls that share the job thread.
        self.pass_seconds = pass_seconds
        self.monotonic = monotonic

    def run_once(self) -> DeliveryResult:
        """Deliver every due message (one pass), conversation by conversation."""
        result = DeliveryResult()
        ends = self.monotonic() + self.pass_seconds
        for conversation_id in self.store.outbox.due(self.clock.now(), self.batch_size):
            if self.stopping.is_set() or self.monotonic() > ends:
                break
            part = self.deliver(conversation_id)
            result.sent += part.sent
            result.failed += part.failed
        return result

    def deliver(self, conversation_id: int) -> DeliveryResult:
        """Send a conversation's queued messages in order, each lane until one fails."""
        result = DeliveryResult()
        blocked: set[str] = set()
        while True:
            now = self.clock.now()
            due = [head for lane, head in self.store.outbox.heads(conversation_id).items()
                   if lane not in blocked and head.next_attempt_at <= now]
            if not due:
                return result
            for head in due:
                token = self.store.outbox.claim(head, now, self.keeper.until())
                if token is None:  # another worker has it: that lane is not ours now
                    blocked.add(head.recipient)
                    continue
                started = time.perf_counter()
                with self.keeper.holding("outbox", [token]):
                    sent = self._send(head, token)
                if self.on_send is not None:
                    self.on_send(head, sent, time.perf_counter() - started)
                if sent:
                    result.sent += 1
                else:
                    result.failed += 1
                    blocked.add(head.recipient)

    def _send(self, message: Queued, token: str) -> bool:
        conv = self.store.outbox.recipient(message.conversation_id)
        try:
            if message.recipient == "owner":
                sent = self._send_to_owner(conv, message)
            else:
                sent = self._send_to_member(conv, message)
        except WhopAPIError as exc:
            self._failed(message, conv, exc, token)
            return False
        self.store.outbox.mark_sent(message.id, token, sent.get("id"), self.clock.now())
        return True

    # Every request is one attempt (retries=0): a retry, and any wait Whop asks for, is
    # scheduled through the outbox instead of slept while the claim is held.

    def _send_to_member(self, conv, message: Queued) -> dict:
        channel_id = conv.channel_id
        if channel_id is None:
            channel_id = self.client.open_dm_channel(conv.user_id, conv.company_id, retries=0)
            self.store.outbox.remember_channel(conv.id, channel_id)
        return self.client.send_message(channel_id, message.text,
                                        idempotency_key=message.idempotency_key, retries=0)

    def _send_to_owner(self, conv, message: Queued) -> dict:
        """The owner's DM (and the Whop notification): a resend after a failed notification
        reuses the DM's Idempotency-Key, so the owner still gets one DM."""
        owner = self.client.account_owner_id(conv.company_id, retries=0)
        channel_id = self.client.open_dm_channel(owner, conv.company_id, retries=0)
        self.client.send_message(channel_id, message.text, idempotency_key=message.idempotency_key,
                                 retries=0)
        if message.title:
            try:
                self.client.post_notification(
                    message.title, message.text.splitlines()[0], account_id=conv.company_id,
                    user_ids=[owner], idempotency_key=f"{message.idempotency_key}-notification",
                    retries=0)
            except WhopAPIError as exc:
                if not _permanent(exc):
                    raise
                # e.g. 403: the API key may not send notifications. The owner has the DM;
                # retrying a refusal forever would only hold the owner's queue.
                log.warning("owner notification for conversation %s refused, the DM was sent: %s",
                            conv.id, str(exc).splitlines()[0])
        return {"id": None}  # the member's stored message ids stay the member's own

    def _failed(self, message: Queued, conv, exc: WhopAPIError, token: str) -> None:
        now = self.clock.now()
        error = str(exc).splitlines()[0][:500]
        attempts = message.attempts + 1
        delay = min(timedelta(seconds=5 * 2 ** min(attempts, 20)), MAX_BACKOFF)
        asked = getattr(exc, "retry_after", None)  # Whop said when: that, not our guess
        if asked is not None:
            delay = timedelta(seconds=max(0.0, float(asked)))
        status = "failed" if attempts >= self.alert_after else "pending"
        self.store.outbox.retry_later(message.id, token, at=now + delay, error=error,
                                      status=status)
        log.warning("message %s for conversation %s not delivered (attempt %d, retry in %ds): %s",
                    message.id, conv.id, attempts, delay.total_seconds(), error)
        if attempts == self.alert_after and self.on_failed is not None:
            self.on_failed(conversation=conv, text=message.text, error=error, attempts=attempts)


def _permanent(exc: WhopAPIError) -> bool:
    """A refusal that will not change on retry (4xx but timeouts, conflicts, rate limits)."""
    code = exc.status_code
    return code is not None and 400 <= code < 500 and code not in (408, 409, 429)
