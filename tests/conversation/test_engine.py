"""The pure engine: messages, state and effects for joins, replies and ticks."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whopfunnel_plugin.conversation.engine import Context, Ended, Engine, NotifyOwner
from whopfunnel_plugin.funnel.model import Step, check_bytes, load_funnel

from ..conftest import FUNNELS

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
CTX = Context("user_1", "exp_1", "Ada")


def funnel_from(text: str):
    funnel, problems = check_bytes(textwrap.dedent(text).encode(), "t.yaml")
    assert funnel is not None, problems
    return funnel


@pytest.fixture
def onboarding():
    return Engine(load_funnel(FUNNELS / "onboarding.yaml"))


def run(engine, *replies, now=NOW):
    decision = engine.start(CTX, now)
    out = [decision]
    for text in replies:
        decision = engine.reply(decision.state, CTX, text, now)
        out.append(decision)
    return out


def test_start_sends_the_welcome_with_numbered_options(onboarding):
    d = onboarding.start(CTX, NOW)
    assert d.messages == (
        "Welcome, Ada! What brings you here?\n\n1. Trading & Investing\n2. Just exploring for now",
    )
    assert d.state.block == "welcome"
    assert d.state.status == "active"
    assert d.state.expires_at == NOW + timedelta(hours=24)
    assert d.effects == ()


def test_a_valid_reply_auto_advances_through_message_blocks(onboarding):
    _, d = run(onboarding, "trading")
    assert d.messages == ("Here is the free guide: https://example.com/guide",
                          "What's the best email to send it to?")
    assert d.state.block == "email"
    assert d.interaction.classification == "valid"
    assert d.interaction.option == 0


def test_input_is_captured_and_used_in_later_templates(onboarding):
    *_, d = run(onboarding, "1", "  Ada@Example.COM ")
    assert d.state.variables == {"email": "Ada@example.com"}
    assert d.state.block == "offer"
    assert d.messages[0].startswith("Thanks! We'll send extra material to Ada@example.com.")


def test_the_default_ladder_reprompts_then_notifies_then_abandons(onboarding):
    _, first, second, third = run(onboarding, "foo", "bar", "baz")
    question = "Welcome, Ada! What brings you here?\n\n1. Trading & Investing\n2. Just exploring for now"
    assert first.messages == ("Please choose from the provided options above.", question)
    assert first.state.invalid_count == 1
    assert first.interaction.attempt == 1
    assert first.interaction.action == "reprompt"
    assert second.messages == (
        "I'll inform the Whop owner about your request. Please wait for assistance.",)
    assert second.effects == (NotifyOwner("notify_owner", "welcome"),)
    assert second.state.owner_notified
    assert third.messages == (
        "I'm unable to help you further. Please contact the Whop owner directly.",)
    assert third.effects == (Ended("abandoned", "max_invalid_responses"),)
    assert third.state.status == "abandoned"
    assert third.state.end_reason == "max_invalid_responses"


def test_a_valid_reply_resets_the_count(onboarding):
    *_, d = run(onboarding, "foo", "1", "not an email")
    assert d.state.invalid_count == 1
    assert d.interaction.attempt == 1
    # an input block's first step says what is wrong with the input, not "choose an option"
    assert d.messages[0] == ("That doesn't look like an email address. Please check it and send "
                             "it again.")
    assert d.messages[1] == "What's the best email to send it to?"


def test_ambiguous_replies_ask_and_do_not_count(onboarding):
    *_, d = run(onboarding, "foo", "1 2")
    assert d.interaction.classification == "ambiguous"
    assert d.interaction.candidates == (0, 1)
    assert d.state.invalid_count == 1
    assert d.messages == ("Did you mean 1. Trading & Investing or 2. Just exploring for now? "
                          "Please reply with the number of your choice.",)


LADDER = """\
id: ladder
start: q
escalation:
  - message: "Attempt one, {user_name}."
  - message: "Owner incoming."
    action: notify_owner
  - message: "Owner again."
    action: notify_owner
  - message: "Taking you to help."
    goto: help
blocks:
  q:
    message: Choose
    options:
      - {text: Yes, next: fin}
      - {text: No, next: fin}
  help:
    message: Need a human?
    escalation:
      - {message: Handing over., action: handoff}
    options:
      - {text: Yes please, next: fin}
  fin:
    type: end
    message: Done
"""


def test_custom_ladder_with_notify_once_goto_and_handoff():
    engine = Engine(funnel_from(LADDER.replace("{text: Yes,", "{text: 'Yes',")
                                .replace("{text: No,", "{text: 'No',")))
    start, one, two, three, four, five = run(engine, "x", "x", "x", "x", "x")
    assert one.messages[0] == "Attempt one, Ada."
    assert two.effects == (NotifyOwner("notify_owner", "q"),)
    assert three.messages == ("Owner again.",)
    assert three.effects == ()  # the owner is notified at most once per conversation
    assert four.messages == ("Taking you to help.", "Need a human?\n\n1. Yes please")
    assert four.state.block == "help"
    assert four.state.invalid_count == 0
    assert five.messages == ("Handing over.",)
    assert five.state.status == "handed_off"
    assert five.state.end_reason == "handoff"
    # a handoff always tells the owner, even after an earlier notify_owner step
    assert five.effects == (NotifyOwner("handoff", "help"), Ended("handed_off", "handoff"))


def test_on_invalid_can_replace_the_message_or_the_step(onboarding):
    d = onboarding.start(CTX, NOW)
    seen = []

    def swap_message(state, reply, attempt, step):
        seen.append((reply, attempt, step.action))
        return "Numbers only, please."

    d1 = onboarding.reply(d.state, CTX, "??", NOW, swap_message)
    assert d1.messages[0] == "Numbers only, please."
    assert d1.interaction.action == "reprompt"
    assert seen == [("??", 1, "reprompt")]
    d2 = onboarding.reply(d1.state, CTX, "??", NOW, lambda *a: Step("Bye now.", "abandon"))
    assert d2.messages == ("Bye now.",)
    assert d2.state.end_reason == "max_invalid_responses"


def test_terminal_blocks_end_with_their_reason():
    two_stage = Engine(load_funnel(FUNNELS / "two_stage.yaml"))
    *_, d = run(two_stage, "2", "yes")
    assert d.messages[-1] == "Here's your invite to the private chat: https://whop.com/hub/private-chat"
    assert d.state.status == "transitioned"
    assert d.effects == (Ended("transitioned", "transitioned"),)
    qual = Engine(load_funnel(FUNNELS / "qualification.yaml"))
    *_, d = run(qual, "beginner", "risk", "1")
    assert d.state.status == "handed_off"
    assert d.effects == (NotifyOwner("handoff", "handoff"), Ended("handed_off", "handoff"))
    *_, d = run(qual, "3", "2", "not yet")
    assert (d.state.status, d.state.end_reason) == ("completed", "completed")


def test_input_validators():
    text = """\
    id: inputs
    start: n
    blocks:
      n: {message: "Number?", input: number, save_as: n, next: r}
      r: {message: "Code?", input: "regex:[A-Z]{3}-\\\\d{2}", save_as: code, next: t}
      t: {message: "Anything?", input: text, save_as: t, next: c}
      c: {message: "VAT?", input: vat, save_as: vat, next: end}
      end: {type: end, message: "{n} {code} {t} {vat}"}
    """
    funnel, problems = check_bytes(textwrap.dedent(text).encode(), "t.yaml", validators={"vat"})
    assert problems == []

    def vat(reply: str) -> str:
        if not reply.upper().startswith("EU"):
            raise ValueError("not a VAT id")
        return reply.upper()

    engine = Engine(funnel, validators={"vat": vat})
    *_, d = run(engine, "abc", "1,234.5", "abc-12", "ABC-12", "  ", "hello", "x1", "eu123")
    assert [x.interaction.classification for x in _[1:]] == [
        "invalid", "valid", "invalid", "valid", "invalid", "valid", "invalid"]
    assert d.state.variables == {"n": "1234.5", "code": "ABC-12", "t": "hello", "vat": "EU123"}
    assert d.messages == ("1234.5 ABC-12 hello EU123",)


def test_timeout_tick_reminder_and_late_reply():
    engine = Engine(load_funnel(FUNNELS / "onboarding.yaml"), reminder=23 * 3600)
    d = engine.start(CTX, NOW)
    assert engine.tick(d.state, CTX, NOW + timedelta(hours=22)).messages == ()
    nudge = engine.tick(d.state, CTX, NOW + timedelta(hours=23))
    assert nudge.messages[0] == "Are you still there? Reply to pick up where we left off."
    assert nudge.state.reminder_sent
    assert engine.tick(nudge.state, CTX, NOW + timedelta(hours=23, minutes=5)).messages == ()
    late = engine.reply(nudge.state, CTX, "1", NOW + timedelta(hours=24))
    assert late.interaction.classification == "late"
    assert late.messages == ()
    assert (late.state.status, late.state.end_reason) == ("abandoned", "timeout")
    assert late.effects == (Ended("abandoned", "timeout"),)
    expired = engine.tick(d.state, CTX, NOW + timedelta(hours=24))
    assert expired.effects == (Ended("abandoned", "timeout"),)


def test_activity_moves_the_expiry():
    engine = Engine(load_funnel(FUNNELS / "onboarding.yaml"), timeout=3600)
    d = engine.start(CTX, NOW)
    assert d.state.expires_at == NOW + timedelta(hours=24)  # the funnel's own timeout wins
    later = NOW + timedelta(hours=5)
    d2 = engine.reply(d.state, CTX, "nonsense", later)
    assert d2.state.expires_at == later + timedelta(hours=24)
    assert d2.state.last_activity == later


def test_replies_to_an_ended_conversation_are_ignored(onboarding):
    *_, ended = run(onboarding, "2")
    assert ended.state.status == "completed"
    again = onboarding.reply(ended.state, CTX, "1", NOW)
    assert again.messages == () and again.interaction.classification == "ignored"


def test_user_replies_are_never_rendered_as_templates(onboarding):
    *_, d = run(onboarding, "1", "{user_id}@example.com")
    assert d.state.variables["email"] == "{user_id}@example.com"
    assert "{user_id}@example.com" in d.messages[0]


ALL_FUNNELS = [p for p in sorted(FUNNELS.glob("*.yaml")) if ".test." not in p.name]


@settings(max_examples=150, deadline=None)
@given(
    which=st.sampled_from(ALL_FUNNELS),
    replies=st.lists(st.one_of(st.text(max_size=30), st.sampled_from(
        ["1", "2", "3", "yes", "no", "a@b.co", "x", "", "second", "1 2"])), max_size=25),
)
def test_property_an_active_conversation_always_has_a_way_forward(which, replies):
    engine = Engine(load_funnel(which))
    d = engine.start(CTX, NOW)
    for text in replies:
        if not d.state.active:
            break
        d = engine.reply(d.state, CTX, text, NOW)
        assert d.messages, "every reply to an active conversation gets an answer"
    if d.state.active:
        block = engine.funnel.blocks[d.state.block]
        assert block.waits
        assert d.state.invalid_count < len(engine.funnel.ladder(block.id))
    else:
        assert d.state.end_reason is not None
