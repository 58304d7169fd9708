"""`whopfunnel chat`: a member's side of a funnel in the terminal, on a real database."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from uuid import uuid4

import click

from ..events import MemberJoined, MessageReceived
from ..funnel.model import Funnel
from ..service.host import Host
from ..service.runtime import HookCallbacks
from ..storage import Store
from .options import config_option, current_config, plugin_context

ENDINGS = {
    "completed": "completed", "abandoned": "abandoned", "handed_off": "handed off to the owner",
    "transitioned": "transitioned",
}


class _Narrator(HookCallbacks):
    """Plugins' hooks, plus notes of what would otherwise happen out of sight (owner
    notifications), shown after the bot's messages."""

    def __init__(self, pm):
        super().__init__(pm)
        self.notes: list[str] = []

    def on_owner_notify(self, conversation, reason, block, last_replies):
        self.notes.append(f"  [owner notified: {reason} at block {block!r}]")
        super().on_owner_notify(conversation, reason, block, last_replies)


class ChatSession:
    def __init__(self, store: Store, funnel: Funnel, pm, *, user_id: str, experience_id: str,
                 user_name: str | None, say: Callable[[str], None], clock=None, **settings):
        self.store = store
        self.funnel = funnel
        self.user_id = user_id
        self.experience_id = experience_id
        self.user_name = user_name
        self.say = say
        self.tenant = store.tenant(experience_id)
        self.narrator = _Narrator(pm)
        self.host = Host(store, {funnel.id: funnel}, clock=clock, callbacks=self.narrator,
                         **settings)
        self._shown: set[int] = set()  # outbox rows already printed (nothing is sent)

    def start(self) -> bool:
        """Resume the member's active conversation or start one; False if it ended at once."""
        row = self.tenant.active(self.user_id)
        if row is not None and (row.expires_at is None or row.expires_at > self.host.clock.now()):
            self.say(f"(resuming conversation {row.id} at block {row.block!r})")
            self._shown.update(m.id for m in self.tenant.pending_outbound(row.id))
            self._show(self.host.prompt(self.experience_id, self.user_id))
            return True
        outcome = self.host.join(MemberJoined(experience_id=self.experience_id,
                                              user_id=self.user_id, user_name=self.user_name))
        self._flush()
        return self._report(outcome.conversation)

    def reply(self, text: str) -> bool:
        """Send one member message; False once the conversation has ended."""
        outcome = self.host.message(MessageReceived(
            experience_id=self.experience_id, user_id=self.user_id,
            message_id=f"local_{uuid4().hex}", text=text))
        seen = outcome.decision.interaction if outcome.decision else None
        if seen is not None and seen.classification == "invalid":
            self.say(f"  [invalid reply {seen.attempt}: {seen.action}]")
        elif seen is not None and seen.classification == "ambiguous":
            self.say("  [ambiguous reply: not counted as invalid]")
        self._flush()
        if outcome.status == "unrouted":
            self.say("(no active conversation)")
            return False
        return self._report(outcome.conversation)

    def run(self, lines: Iterable[str], echo: bool) -> None:
        if not self.start():
            return
        for line in lines:
            text = line.rstrip("\r\n")
            if echo:
                self.say(f"you> {text}")
            if not self.reply(text):
                return
        self.say("(end of input: the conversation stays open; run chat again to resume)")

    def _flush(self) -> None:
        row = self.tenant.latest(self.user_id)
        if row is None:
            return
        for message in self.tenant.pending_outbound(row.id):
            if message.id not in self._shown:
                self._shown.add(message.id)
                self._show([message.text])
        for note in self.narrator.notes:
            self.say(note)
        self.narrator.notes.clear()

    def _show(self, texts) -> None:
        for text in texts:
            lines = text.splitlines() or [""]
            self.say(f"bot> {lines[0]}")
            for line in lines[1:]:
                self.say(f"     {line}")

    def _report(self, conversation) -> bool:
        if conversation is None or conversation.status == "active":
            return conversation is not None
        self.say(f"(conversation {ENDINGS.get(conversation.status, conversation.status)}; "
                 f"end reason: {conversation.end_reason})")
        return False


def stdin_lines() -> Iterable[str]:
    if sys.stdin.isatty():
        while True:
            try:
                yield input("you> ")
            except EOFError:
                print()
                return
    else:
        yield from sys.stdin


@click.command()
@click.argument("funnel_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--db", "db_path", type=click.Path(dir_okay=False),
              help="SQLite file to keep the conversation in (default: a temporary file).")
@click.option("--as", "user_id", default="user_local", show_default=True, help="Member id.")
@click.option("--name", "user_name", default=None, help="Member display name.")
@click.option("--experience", "experience_id", default="exp_local", show_default=True,
              help="Experience (tenant) id.")
@config_option
def chat(funnel_file, db_path, user_id, user_name, experience_id) -> None:
    """Talk to a funnel in the terminal as a member (reads replies from stdin)."""
    from ..funnel.model import load_funnel

    config = current_config()
    extra = plugin_context(config)
    funnel = load_funnel(funnel_file, ladders=config.ladders, validators=extra["validators"],
                         template_vars=extra["template_vars"])
    tmp = None
    if db_path is None:
        tmp = tempfile.TemporaryDirectory(prefix="whopfunnel-chat-")
        db_path = str(Path(tmp.name) / "chat.db")
    store = Store(f"sqlite:///{db_path}")
    try:
        store.upgrade()
        say = click.echo
        say(f"whopfunnel chat: funnel {funnel.id!r} as {user_id} in {experience_id} "
            f"(database {db_path if not tmp else 'temporary'})")
        session = ChatSession(store, funnel, extra["pm"], user_id=user_id,
                              experience_id=experience_id, user_name=user_name, say=say,
                              timeout=config.timeout, reminder=config.reminder,
                              validators=extra["validators"])
        session.run(stdin_lines(), echo=not sys.stdin.isatty())
    finally:
        store.close()
        if tmp is not None:
            tmp.cleanup()
