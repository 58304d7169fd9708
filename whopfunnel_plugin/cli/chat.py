"""`whopfunnel chat`: a member's side of a funnel in the terminal, with every hook firing
as in `serve` (the sandbox: the embedding API, SQLite, the fake Whop API in-process)."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import click

from ..funnel.model import Funnel
from .options import config_option, current_config, plugin_context
from .sandbox import Sandbox, Turn

ENDINGS = {
    "completed": "completed", "abandoned": "abandoned", "handed_off": "handed off to the owner",
    "transitioned": "transitioned",
}


class ChatSession:
    def __init__(self, sandbox: Sandbox, funnel: Funnel, *, user_id: str, experience_id: str,
                 user_name: str | None, say: Callable[[str], None], temporary: bool):
        self.sandbox = sandbox
        self.funnel = funnel
        self.user_id = user_id
        self.experience_id = experience_id
        self.user_name = user_name
        self.say = say
        self.temporary = temporary

    def start(self) -> bool:
        """Resume the member's active conversation or start one; False if it ended at once."""
        turn = self.sandbox.join(self.user_id, self.experience_id, self.user_name)
        conv = turn.conversation
        if turn.outcome is not None and turn.outcome.status == "kept" and conv is not None:
            self.say(f"(resuming conversation {conv.id} at block {conv.block!r})")
            if conv.funnel_version != self.funnel.version:
                self.say(f"(note: {self.funnel.file} changed since this conversation began; it "
                         "carries on with the version it started on, and new conversations get "
                         "the edited one)")
            self._show(self.sandbox.prompt(self.user_id, self.experience_id))
            return True
        self._tell(turn)
        if turn.outcome is None or conv is None:
            self.say(f"(no conversation started: {getattr(turn.outcome, 'status', 'no answer')})")
            return False
        return self._report(conv)

    def reply(self, text: str) -> bool:
        """Send one member message; False once the conversation has ended."""
        turn = self.sandbox.say(self.user_id, self.experience_id, text)
        seen = turn.decision.interaction if turn.decision else None
        if seen is not None and seen.classification == "invalid":
            self.say(f"  [invalid reply {seen.attempt}: {seen.action}]")
        elif seen is not None and seen.classification == "ambiguous":
            self.say("  [ambiguous reply: not counted as invalid]")
        self._tell(turn)
        if turn.outcome is None or turn.outcome.status == "unrouted":
            self.say("(no active conversation)")
            return False
        return self._report(turn.conversation)

    def run(self, lines: Iterable[str], echo: bool) -> None:
        if not self.start():
            return
        for line in lines:
            text = line.rstrip("\r\n")
            if not text.strip():
                continue  # a blank line is nobody's answer
            if echo:
                self.say(f"you> {text}")
            if not self.reply(text):
                return
        if self.temporary:
            self.say("(end of input: the conversation was in a temporary database and is gone; "
                     "use --db FILE to keep it and resume later)")
        else:
            self.say("(end of input: the conversation stays open; run chat again with the same "
                     "--db, --as and --experience to resume)")

    def _tell(self, turn: Turn) -> None:
        self._show(turn.member)
        for reason, block in turn.owner_notified:
            self.say(f"  [owner notified: {reason} at block {block!r}]")
        for text in turn.owner:
            self.say(f"  [DM to the owner: {text.splitlines()[0] if text else ''}]")
        for note in turn.notifications:
            self.say(f"  [Whop notification to the owner: {note.splitlines()[0]}]")

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


def terminal_lines(prompt: str = "you> ") -> Iterable[str]:
    """Lines typed at a terminal, with readline's line editing and history where Python has
    it; end of input (Ctrl-D) ends the loop, Ctrl-C too, after a newline."""
    try:
        import readline  # noqa: F401 - importing it is what gives input() line editing
    except ImportError:  # Windows, or a Python built without it
        pass
    while True:
        try:
            yield input(prompt)
        except EOFError:
            print()
            return


@click.command()
@click.argument("funnel_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--db", "db_path", type=click.Path(dir_okay=False),
              help="SQLite file to keep the conversation in (default: a temporary one, gone "
                   "when chat exits).")
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
    sandbox = Sandbox(config, funnel, f"sqlite:///{db_path}")
    interactive = sys.stdin.isatty()
    try:
        where = ("a temporary database, gone when chat exits" if tmp else f"database {db_path}")
        click.echo(f"whopfunnel chat: funnel {funnel.id!r} as {user_id} in {experience_id} "
                   f"({where}; Whop is the built-in fake)")
        session = ChatSession(sandbox, funnel, user_id=user_id, experience_id=experience_id,
                              user_name=user_name, say=click.echo, temporary=tmp is not None)
        try:
            session.run(terminal_lines() if interactive else sys.stdin, echo=not interactive)
        except KeyboardInterrupt:
            click.echo("\n(interrupted)")
            raise
    finally:
        sandbox.close()
        if tmp is not None:
            tmp.cleanup()
