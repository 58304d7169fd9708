"""`whopfunnel conversations list|show|end|retry-failed`: tenant-scoped admin.

A conversation id belongs to one experience: give it with `--experience`, or the
command finds it and says which it used. `end` runs through a real plugin manager, so
`on_conversation_end` (and every plugin's end hooks) fire as they would in `serve`.
Every command takes `--format json` for scripts.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime

import click

from ..conversation.engine import END_REASONS, STATUSES
from ..errors import ConversationNotFound, WhopFunnelError
from .options import config_option, current_config, plural

FORMAT = click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table",
                      show_default=True, help="A table for people, JSON for scripts.")
EXPERIENCE = click.option("--experience", "experience_id", default=None, metavar="EXP",
                          help="The tenant (Whop experience id).")


@click.group()
def conversations() -> None:
    """List, show, end conversations and retry failed messages (tenant-scoped)."""


def _store():
    from ..storage import Store

    store = Store(current_config().database_url())
    try:
        store.check_schema()
    except BaseException:
        store.close()
        raise
    return store


def _tenant(store, conversation_id: int, experience_id: str | None) -> str:
    from ..storage import admin

    if experience_id is not None:
        return experience_id
    found = admin.experience_of(store, conversation_id)
    if found is None:
        raise ConversationNotFound(f"no conversation {conversation_id} in any experience")
    click.echo(f"(conversation {conversation_id} is in experience {found}; pass --experience "
               "to say so)", err=True)
    return found


def _row(record) -> dict:
    keys = ("id", "experience_id", "user_id", "user_name", "funnel_id", "block", "status",
            "end_reason", "invalid_count", "variables", "started_at", "last_activity",
            "expires_at", "ended_at", "channel_id")
    return {k: _plain(getattr(record, k)) for k in keys}


def _plain(value):
    return value.isoformat() if isinstance(value, datetime) else value


def _json(data) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_plain))


@conversations.command("list")
@EXPERIENCE
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only this status.")
@click.option("--user", "user_id", default=None, help="Only this member (user id).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@FORMAT
@config_option
def list_(experience_id, status, user_id, limit, fmt) -> None:
    """Conversations, newest first (every tenant's unless --experience)."""
    from ..storage import admin

    store = _store()
    try:
        rows = admin.conversations(store, experience_id=experience_id, status=status,
                                   user_id=user_id, limit=limit)
    finally:
        store.close()
    if fmt == "json":
        return _json([_row(r) for r in rows])
    if not rows:
        click.echo("no conversations")
        return
    click.echo(f"{'id':>6}  {'experience':<16} {'member':<20} {'funnel':<16} {'block':<16} "
               f"{'status':<12} {'reason':<22} last activity")
    for r in rows:
        click.echo(f"{r.id:>6}  {r.experience_id:<16} {r.user_id:<20} {r.funnel_id:<16} "
                   f"{r.block:<16} {r.status:<12} {r.end_reason or '-':<22} "
                   f"{r.last_activity:%Y-%m-%d %H:%M:%S}")


@conversations.command()
@click.argument("conversation_id", type=int)
@EXPERIENCE
@FORMAT
@config_option
def show(conversation_id, experience_id, fmt) -> None:
    """A conversation's transcript, with each reply's classification and escalation step."""
    from ..storage import admin

    store = _store()
    try:
        found = admin.transcript(store, _tenant(store, conversation_id, experience_id),
                                 conversation_id)
    finally:
        store.close()
    c = found.conversation
    if fmt == "json":
        return _json({"conversation": {**_row(c), "funnel_version": found.funnel_version},
                      "transcript": [asdict(line) for line in found.lines]})
    who = f"{c.user_id} ({c.user_name})" if c.user_name else c.user_id
    ending = f"{c.status} ({c.end_reason})" if c.end_reason else f"{c.status} at block {c.block!r}"
    click.echo(f"conversation {c.id} in {c.experience_id}: {who}, funnel {c.funnel_id} "
               f"(version {found.funnel_version}), {ending}")
    if c.variables:
        click.echo(f"captured: {json.dumps(c.variables, ensure_ascii=False)}")
    for line in found.lines:
        label = "member" if line.sender == "member" else (
            "bot" if line.recipient == "member" else "bot->owner")
        note = _note(line)
        texts = line.text.splitlines() or [""]
        click.echo(f"{line.at:%Y-%m-%d %H:%M:%S}  {label:<10} {texts[0]}{note}")
        for more in texts[1:]:
            click.echo(f"{'':<31}{more}".rstrip())


def _note(line) -> str:
    if line.sender == "member":
        if line.classification == "invalid":
            return f"   [invalid, attempt {line.attempt}: {line.step}]"
        if line.classification == "valid" and line.option:
            return f"   [valid: option {line.option} at {line.block}]"
        return f"   [{line.classification}]" if line.classification else ""
    if line.status != "sent":
        error = f"; {line.last_error}" if line.last_error else ""
        return f"   [{line.status}, {plural(line.attempts, 'attempt')}{error}]"
    return ""


@conversations.command()
@click.argument("conversation_id", type=int)
@EXPERIENCE
@click.option("--reason", type=click.Choice(END_REASONS), default="manual", show_default=True)
@FORMAT
@config_option
def end(conversation_id, experience_id, reason, fmt) -> None:
    """End an active conversation now; its end hooks fire (on_conversation_end)."""
    from ..plugins import make_plugin_manager

    pm = make_plugin_manager(current_config())
    try:
        exp = _tenant(pm.runtime.store, conversation_id, experience_id)
        outcome = pm.runtime.host.end(experience_id=exp, conversation_id=conversation_id,
                                      reason=reason)
    finally:
        pm.close()
    if outcome.status != "ended":
        raise WhopFunnelError(f"conversation {conversation_id} in {exp} is not active; nothing "
                              "to end")
    c = outcome.conversation
    if fmt == "json":
        return _json({"status": "ended", "conversation": _row(c)})
    click.echo(f"conversation {c.id} in {c.experience_id} ended: {c.status} ({c.end_reason}); "
               "end hooks fired")


@conversations.command("retry-failed")
@EXPERIENCE
@FORMAT
@config_option
def retry_failed(experience_id, fmt) -> None:
    """Make every message in the `failed` state due now (every tenant's unless --experience);
    a running `serve` sends them on its next outbox pass."""
    from ..clock import SystemClock
    from ..storage import admin

    store = _store()
    try:
        counts = admin.failed_counts(store, experience_id)
        now = SystemClock().now()
        done = {exp: store.outbox.requeue_failed(now, exp) for exp in counts}
    finally:
        store.close()
    if fmt == "json":
        return _json({"requeued": done, "total": sum(done.values())})
    for exp, n in done.items():
        click.echo(f"{exp}: requeued {plural(n, 'message')}")
    scope = experience_id or "all experiences"
    click.echo(f"total: requeued {plural(sum(done.values()), 'message')} ({scope})")

