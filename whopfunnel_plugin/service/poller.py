"""The polling fallback: read new DMs of active conversations after a stored cursor.

Webhooks are the primary path; whether Whop sends `chat.message.created` for DMs to
an API identity is unverified, so this keeps conversations moving either way. Every
message goes through the same exactly-once path (`on_message`), so a message seen by
both a webhook and the poller is processed once. Requests per minute are capped.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from ..errors import WhopAPIError
from ..events import MessageReceived

log = logging.getLogger("whopfunnel.poller")


class Poller:
    def __init__(self, pm, *, bot_user_id: str | None, requests_per_minute: int = 60,
                 batch_size: int = 50, monotonic=time.monotonic):
        self.pm = pm
        self.runtime = pm.runtime
        self.bot_user_id = bot_user_id
        self.rate = requests_per_minute / 60.0
        self.capacity = max(1.0, float(requests_per_minute))
        self.tokens = self.capacity
        self.batch_size = batch_size
        self.monotonic = monotonic
        self._last = monotonic()
        self._after_id = 0  # round-robin position, so every channel gets its turn

    def run_once(self) -> int:
        """Poll the next batch of DM channels within the budget; returns messages fed."""
        self._refill()
        fed = 0
        for channel_id, first_id in self.runtime.store.poll_channels(self._after_id,
                                                                     self.batch_size):
            if self.tokens < 1:
                break
            self.tokens -= 1
            self._after_id = first_id
            fed += self._poll(channel_id)
        return fed

    def _refill(self) -> None:
        now = self.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now

    def _poll(self, channel_id: str) -> int:
        """One page of a channel; each member message goes to exactly one conversation."""
        store = self.runtime.store
        cursor = store.poll_cursor(channel_id)
        try:
            page = self.runtime.client.list_messages(channel_id, after=cursor)
        except WhopAPIError as exc:
            log.warning("polling DM channel %s failed: %s", channel_id, exc)
            return 0
        fed = 0
        for message in page.data:
            author = (message.get("user") or {}).get("id")
            if not author or author == self.bot_user_id:
                continue
            if (message.get("message_type") or "regular") != "regular":
                continue  # a system or automated message is never the member's reply
            conv, _ = store.route_dm(author, channel_id)
            if conv is None or conv.channel_id != channel_id:
                continue
            if _before(message.get("created_at"), conv.started_at):
                continue  # history from before this conversation is not a reply to it
            self.pm.hook.on_message(message=MessageReceived(
                experience_id=conv.experience_id, user_id=author,
                message_id=str(message.get("id")), text=str(message.get("content") or ""),
                channel_id=channel_id))
            fed += 1
        if page.end_cursor and page.end_cursor != cursor:
            store.save_poll_cursor(channel_id, page.end_cursor)
        return fed


def _before(created_at, started: datetime) -> bool:
    if isinstance(created_at, (int, float)):
        return created_at < started.timestamp()
    if isinstance(created_at, str):
        try:
            when = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
        except ValueError:
            return False
        if when.tzinfo is None:
            return False
        return when < started
    return False
