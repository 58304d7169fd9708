"""A whole whopfunnel, offline, for `chat` and `test`: the public embedding API on SQLite,
with the built-in fake Whop API in-process.

`make_plugin_manager(config, environ=..., clock=..., transport=httpx.WSGITransport(app=
FakeWhop(...)))` is exactly what a bot host embeds, so every hook fires as in `serve`
(plugins' `on_member_join` and `on_message` included), replies go through the outbox and
the Whop client, and what "Whop" received (member DMs, owner DMs, notifications) is
read back from the fake.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import httpx

from ..config import Config, Route
from ..events import MemberJoined, MessageReceived
from ..funnel.model import Funnel
from ..hookspecs import hookimpl
from ..plugins import make_plugin_manager
from ..storage.store import Store
from ..whop.fake import FakeWhop

COMPANY = "biz_local"
OWNER = "user_owner"


@dataclass
class Turn:
    """What one event did, as the member and the owner would see it."""

    outcome: object | None  # the built-in funnel plugin's Outcome
    member: list[str] = field(default_factory=list)  # DMs the member received
    owner: list[str] = field(default_factory=list)  # DMs the owner received
    notifications: list[str] = field(default_factory=list)  # their titles
    owner_notified: list[tuple[str, str]] = field(default_factory=list)  # (reason, block)

    @property
    def decision(self):
        return getattr(self.outcome, "decision", None)

    @property
    def conversation(self):
        return getattr(self.outcome, "conversation", None)


class _Witness:
    """Registered like any plugin: records the owner notifications hooks are told about."""

    def __init__(self) -> None:
        self.notified: list[tuple[str, str]] = []

    @hookimpl
    def on_owner_notify(self, conversation, reason, block, last_replies):
        self.notified.append((reason, block))


class Sandbox:
    def __init__(self, config: Config, funnel: Funnel, db_url: str, *, clock=None,
                 environ: Mapping[str, str] | None = None, entrypoints: bool = True):
        self.funnel = funnel
        self.fake = FakeWhop(f"sandbox_{secrets.token_hex(8)}", clock=clock,
                             owners={COMPANY: {"id": OWNER, "username": "owner", "name": "Owner"}})
        store = Store(db_url)
        try:
            store.upgrade()
        finally:
            store.close()
        config = dataclasses.replace(
            config, database=db_url, funnels=(str(Path(funnel.file).resolve()),),
            funnels_pos=(), routes=(Route(funnel=funnel.id, default=True),),
            base_url="http://whop.sandbox/api/v1", poll_every=0)
        env = {k: v for k, v in (os.environ if environ is None else environ).items()
               if k != "DATABASE_URL"}  # never the real database
        env.update({config.api_key_env: self.fake.api_key, config.webhook_secret_env: "ws_sandbox",
                    config.bot_user_id_env: self.fake.bot_user["id"]})
        self.pm = make_plugin_manager(config, environ=env, clock=clock, entrypoints=entrypoints,
                                      transport=httpx.WSGITransport(app=self.fake))
        self.witness = _Witness()
        self.pm.register(self.witness, name="whopfunnel.sandbox")
        self._seen: dict[str, int] = {}
        self._notes = 0

    @property
    def runtime(self):
        return self.pm.runtime

    def join(self, user_id: str, experience_id: str, user_name: str | None = None) -> Turn:
        results = self.pm.hook.on_member_join(event=MemberJoined(
            experience_id=experience_id, user_id=user_id, user_name=user_name, company_id=COMPANY))
        return self._turn(results, user_id)

    def say(self, user_id: str, experience_id: str, text: str) -> Turn:
        results = self.pm.hook.on_message(message=MessageReceived(
            experience_id=experience_id, user_id=user_id, message_id=f"local_{uuid4().hex}",
            text=text))  # no channel id: a resumed --db conversation knows an older fake's
        return self._turn(results, user_id)

    def sweep(self, user_id: str) -> Turn:
        """The timeout sweep, then the outbox, as `serve` runs them."""
        self.runtime.host.sweep()
        self.runtime.dispatcher.run_once()
        return self._turn([], user_id)

    def prompt(self, user_id: str, experience_id: str) -> tuple[str, ...]:
        return self.runtime.host.prompt(experience_id, user_id)

    def close(self) -> None:
        close = getattr(self.pm, "close", None)
        (close or self.runtime.close)()

    def _turn(self, results, user_id: str) -> Turn:
        outcome = next((r for r in results or () if hasattr(r, "decision")), None)
        channel = getattr(getattr(outcome, "conversation", None), "channel_id", None)
        if channel:  # a conversation resumed from --db: its channel is an older fake's
            self.fake.adopt_channel(channel, user_id, COMPANY)
        turn = Turn(outcome, self._new(self.fake.channel_for(user_id, COMPANY)),
                    self._new(self.fake.channel_for(OWNER, COMPANY)))
        notes = self.fake.notifications
        turn.notifications = [n["title"] for n in notes[self._notes:]]
        self._notes = len(notes)
        turn.owner_notified = list(self.witness.notified)
        self.witness.notified.clear()
        return turn

    def _new(self, channel: str) -> list[str]:
        sent = self.fake.sent_messages(channel)
        start = self._seen.get(channel, 0)
        self._seen[channel] = len(sent)
        return [m["content"] for m in sent[start:]]
