"""`whopfunnel conversations list|show|end|retry-failed`: tenant-scoped admin, JSON output."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner

from whopfunnel_plugin import MemberJoined, MessageReceived
from whopfunnel_plugin.cli import cli

SPY = '''
import json, os
from whopfunnel_plugin import hookimpl

@hookimpl
def on_conversation_end(conversation):
    with open(os.environ["ENDSPY"], "a") as out:
        out.write(json.dumps([conversation.id, conversation.status, conversation.end_reason]) + "\\n")
'''


@pytest.fixture
def world(make_pm, tmp_path, monkeypatch, clock):
    (tmp_path / "endspy.py").write_text(SPY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("ENDSPY", str(tmp_path / "ends.jsonl"))
    for name in ("WHOPFUNNEL_CONFIG", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    pm = make_pm("plugins: [endspy]\n")

    def join(user, exp):
        results = pm.hook.on_member_join(event=MemberJoined(experience_id=exp, user_id=user,
                                                            company_id="biz_1", user_name="Ada"))
        return next(r for r in results if r is not None)  # the funnel plugin's Outcome

    def say(user, exp, text):
        clock.advance(seconds=1)  # a transcript is in time order: events take time
        return pm.hook.on_message(message=MessageReceived(
            experience_id=exp, user_id=user, message_id=f"m_{uuid.uuid4().hex}", text=text))

    ada = join("user_ada", "exp_1").conversation
    say("user_ada", "exp_1", "what?")
    say("user_ada", "exp_1", "1 or 2")
    say("user_ada", "exp_1", "1")
    bob = join("user_bob", "exp_2").conversation
    say("user_bob", "exp_2", "2")  # just exploring: completed

    def run(*args):
        return CliRunner().invoke(cli, ["conversations", *map(str, args), "--config",
                                        str(tmp_path / "plugin.yaml")], catch_exceptions=False)

    return pm, run, ada, bob, tmp_path


def test_list_every_tenant_or_one_with_filters(world):
    _, run, ada, bob, _ = world
    result = run("list")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["id", "experience", "member", "funnel"]
    assert [line.split()[:7] for line in lines[1:]] == [
        [str(bob.id), "exp_2", "user_bob", "onboarding", "goodbye", "completed", "completed"],
        [str(ada.id), "exp_1", "user_ada", "onboarding", "email", "active", "-"]]
    listed = json.loads(run("list", "--experience", "exp_1", "--format", "json").output)
    assert [(c["id"], c["experience_id"], c["status"]) for c in listed] == [(ada.id, "exp_1", "active")]
    assert json.loads(run("list", "--status", "completed", "--format", "json").output)[0]["id"] == bob.id
    assert json.loads(run("list", "--user", "user_nobody", "--format", "json").output) == []
    assert run("list", "--experience", "exp_9").output == "no conversations\n"


def test_show_is_the_transcript_with_classifications_and_steps(world):
    _, run, ada, _, _ = world
    result = CliRunner().invoke(cli, ["conversations", "show", str(ada.id), "--config",
                                      str(world[4] / "plugin.yaml")], catch_exceptions=False)
    assert result.exit_code == 0
    assert f"(conversation {ada.id} is in experience exp_1; pass --experience to say so)" in result.output
    text = run("show", ada.id, "--experience", "exp_1").output
    assert text.splitlines()[0].startswith(
        f"conversation {ada.id} in exp_1: user_ada (Ada), funnel onboarding (version ")
    said = [line[21:] for line in text.splitlines()[1:] if line[21:].startswith("member")]
    assert said == ["member     what?   [invalid, attempt 1: reprompt]",
                    "member     1 or 2   [ambiguous]",
                    "member     1   [valid: option 1 at welcome]"]
    shown = json.loads(run("show", ada.id, "--experience", "exp_1", "--format", "json").output)
    assert shown["conversation"]["block"] == "email"
    lines = shown["transcript"]
    assert [(x["sender"], x["classification"], x["attempt"], x["step"]) for x in lines
            if x["sender"] == "member"] == [("member", "invalid", 1, "reprompt"),
                                            ("member", "ambiguous", None, None),
                                            ("member", "valid", None, None)]
    # true order: each bot line follows the member line that caused it
    order = [x["sender"] for x in lines]
    assert order == ["bot", "member", "bot", "bot", "member", "bot", "member", "bot", "bot"]


def test_another_tenants_id_is_not_found(world):
    _, run, ada, _, _ = world
    result = run("show", ada.id, "--experience", "exp_2")
    assert (result.exit_code, result.output) == (
        1, f"error: no conversation {ada.id} in experience exp_2\n")
    assert run("show", 99999).output == "error: no conversation 99999 in any experience\n"


def test_end_fires_the_end_hooks_once(world):
    pm, run, ada, _, tmp_path = world
    result = run("end", ada.id, "--experience", "exp_1", "--format", "json")
    assert result.exit_code == 0, result.output
    ended = json.loads(result.output)
    assert (ended["status"], ended["conversation"]["status"], ended["conversation"]["end_reason"]) == (
        "ended", "abandoned", "manual")
    spied = [json.loads(line) for line in (tmp_path / "ends.jsonl").read_text().splitlines()]
    assert [ada.id, "abandoned", "manual"] in spied
    again = run("end", ada.id, "--experience", "exp_1")
    assert (again.exit_code, again.output) == (
        1, f"error: conversation {ada.id} in exp_1 is not active; nothing to end\n")
    assert pm.runtime.store.tenant("exp_1").conversation(ada.id).status == "abandoned"


def test_retry_failed_requeues_only_failed_messages(world, clock):
    pm, run, ada, bob, _ = world
    m = pm.runtime.store.models.message
    later = clock.now().replace(year=2030)
    for conv in (ada, bob):
        m.update(status="failed", next_attempt_at=later, attempts=5).where(
            (m.conversation == conv.id) & (m.direction == "out")).execute()
    assert json.loads(run("retry-failed", "--experience", "exp_2", "--format", "json").output) == {
        "requeued": {"exp_2": 2}, "total": 2}
    result = run("retry-failed")
    assert result.output == ("exp_1: requeued 6 messages\n"
                             "total: requeued 6 messages (all experiences)\n")
    rows = list(m.select().where(m.direction == "out"))
    assert {r.status for r in rows} == {"pending"}
    assert all(r.next_attempt_at < later for r in rows)
    assert run("retry-failed").output == "total: requeued 0 messages (all experiences)\n"
