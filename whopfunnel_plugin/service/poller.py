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

from peewee import fn

from ..errors import WhopAPIError
from ..events import MessageReceived
from ..storage import store as s

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
        c = s.ConversationRow
        first = fn.MIN(c.id)
        base = (c.select(c.channel_id, first.alias("first_id"))
                .where((c.status == "active") & c.channel_id.is_null(False))
                .group_by(c.channel_id))
        batch = list(base.having(first > self._after_id).order_by(first)
                     .limit(self.batch_size).namedtuples())
        if len(batch) < self.batch_size and self._after_id:
            batch += list(base.having(first <= self._after_id).order_by(first)
                          .limit(self.batch_size - len(batch)).namedtuples())
        fed = 0
        for channel in batch:
            if self.tokens < 1:
                break
            self.tokens -= 1
            self._after_id = channel.first_id
            fed += self._poll(channel.channel_id)
        return fed

    def _refill(self) -> None:
        now = self.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now

    def _poll(self, channel_id: str) -> int:
        """One page of a channel; each member message goes to exactly one conversation."""
        c = s.ConversationRow
        # Resume where any conversation on this channel left off (a returning member's
        # earlier one included), instead of paging through the whole DM history again.
        last = (c.select(c.poll_cursor).where((c.channel_id == channel_id)
                                              & c.poll_cursor.is_null(False))
                .order_by(c.id.desc()).first())
        cursor = last.poll_cursor if last else None
        try:
            page = self.runtime.client.list_messages(channel_id, after=cursor)
        except WhopAPIError as exc:
            log.warning("polling DM channel %s failed: %s", channel_id, exc)
            return 0
        store = self.runtime.store
        fed = 0
        for message in page.data:
            author = (message.get("user") or {}).get("id")
            if not author or author == self.bot_user_id:
                continue
            if (message.get("message_type") or "regular") != "regular":
                continue  # a system or automated message is never the member's reply
            conv = store.route_dm(author, channel_id)
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
            c.update(poll_cursor=page.end_cursor).where(
                (c.channel_id == channel_id) & (c.status == "active")).execute()
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
