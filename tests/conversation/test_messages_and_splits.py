"""Issue 12 (messages that fit the block), issue 10 item 9 (bounded regex inputs) and
issue 13 item 4 (split blocks), on the pure engine."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from datetime import datetime, timezone

import pytest

from whopfunnel_plugin import InvalidReply
from whopfunnel_plugin.conversation import inputs
from whopfunnel_plugin.conversation.engine import Context, Engine
from whopfunnel_plugin.conversation.split import draw
from whopfunnel_plugin.funnel.model import Funnel, check_bytes

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
CTX = Context("user_1", "exp_1", "Ada")


def engine_for(text: str, **kwargs) -> Engine:
    funnel, problems = check_bytes(textwrap.dedent(text).encode(), "t.yaml",
                                   validators=kwargs.get("validators", {}))
    assert funnel is not None, problems
    return Engine(funnel, **kwargs)


def replies(engine: Engine, *texts: str, ctx: Context = CTX):
    decision = engine.start(ctx, NOW)
    for text in texts:
        decision = engine.reply(decision.state, ctx, text, NOW)
    return decision


INPUT = """\
id: x
start: ask
blocks:
  ask:
    message: "Your {what}?"
    input: "{input}"
    save_as: value
    next: done{extra}
  done: {{type: end, message: "Got {{value}}"}}
"""


def ask(input: str, extra: str = "", **kwargs) -> Engine:
    return engine_for(INPUT.format(what="answer", input=input, extra=extra), **kwargs)


@pytest.mark.parametrize("input, reply, first", [
    ("email", "ada@", "That doesn't look like an email address. Please check it and send it again."),
    ("number", "lots", "That doesn't look like a number. Please reply with digits, like 42."),
    ("regex:[A-Z]{3}", "abcd", "That isn't in the format I was expecting. Please check it and "
     "try again."),
])
def test_each_validator_has_its_own_first_invalid_message(input, reply, first):
    d = replies(ask(input), reply)
    assert d.messages == (first, "Your answer?")
    assert d.interaction.classification == "invalid" and d.interaction.action == "reprompt"


def test_a_block_overrides_the_message_with_invalid_message():
    engine = ask("email", '\n    invalid_message: "{user_name}, I need an email like ada@example.com."')
    assert replies(engine, "nope").messages[0] == "Ada, I need an email like ada@example.com."


def test_question_blocks_keep_the_seed_wording_and_can_override_it():
    text = """\
        id: q
        start: a
        blocks:
          a:
            message: Pick
            options:
              - {text: Sure, next: e}
              - {text: Nope, next: e}
        EXTRA
          e: {type: end, message: bye}
        """
    plain = engine_for(text.replace("EXTRA", ""))
    assert replies(plain, "maybe").messages[0] == "Please choose from the provided options above."
    custom = engine_for(text.replace("EXTRA", '    invalid_message: "Reply sure or nope."'))
    assert replies(custom, "maybe").messages[0] == "Reply sure or nope."


def test_plugin_validators_say_their_own_message_or_their_default():
    def vat(text):
        if len(text) < 4:
            raise InvalidReply("A VAT id is longer than that.")
        if not text[:2].isalpha():
            raise ValueError("internal: no country prefix")  # never shown to the member
        return text.upper()

    engine = ask("vat", validators={"vat": vat})
    assert replies(engine, "DE").messages[0] == "A VAT id is longer than that."
    assert replies(engine, "12345").messages[0] == inputs.GENERIC_INVALID
    vat.invalid_message = "That isn't a VAT id like DE123456789."
    assert replies(engine, "12345").messages[0] == "That isn't a VAT id like DE123456789."
    assert replies(engine, "de1234").messages[0] == "Got DE1234"


def test_a_validator_that_crashes_is_a_no_with_the_generic_message():
    engine = ask("boom", validators={"boom": lambda text: 1 / 0})
    assert replies(engine, "x").messages[0] == inputs.GENERIC_INVALID


def test_numbers_in_any_script_are_saved_as_ascii_digits():
    for reply, saved in (("١٢٣", "123"), ("१२३", "123"), ("４２", "42"), ("1,234.5", "1234.5")):
        assert replies(ask("number"), reply).messages == (f"Got {saved}",)


def test_a_catastrophic_regex_is_answered_at_once_and_correctly():
    # issue 10 item 9: `(a+)+$` took 13 s on 30 characters under Python's re
    engine = ask("regex:(a+)+$")
    bad = replies(engine, "a" * 30 + "!")
    assert bad.interaction.classification == "invalid"
    assert bad.messages[0].startswith("That isn't in the format")
    assert replies(engine, "a" * 30).messages == ("Got " + "a" * 30,)
    long = replies(engine, "a" * 5000 + "!")  # longer than any regex input looks at
    assert long.interaction.classification == "invalid"


def test_an_old_snapshot_with_an_unsupported_regex_still_never_hangs():
    funnel = ask("email").funnel.to_dict()
    funnel["blocks"]["ask"]["input"] = "regex:((a+)+)(?=!)"  # refused by today's validator
    engine = Engine(Funnel.from_dict(funnel))
    assert replies(engine, "a" * 40 + "!").interaction.classification == "invalid"


SPLIT = """\
id: s
start: pick
blocks:
  pick:
    type: split
    branches:
      - {weight: 70, next: a, name: long welcome}
      - {weight: 30, next: b}
  a: {type: end, message: A}
  b: {type: end, message: B}
"""


def test_a_split_passes_through_and_reports_its_draw():
    engine = engine_for(SPLIT)
    d = engine.start(Context("user_1", "exp_1", seed="exp_1:user_1:2026-03-01"), NOW)
    index = draw("exp_1:user_1:2026-03-01", "pick", [70, 30])
    assert d.draws == (("pick", index),)
    assert d.entered == ("pick", "ab"[index])
    assert d.messages == ("AB"[index],)
    assert d.state.status == "completed"


def test_split_draws_are_sticky_and_follow_the_weights():
    engine = engine_for(SPLIT)
    first = [engine.start(Context(f"u{i}", "exp"), NOW).draws for i in range(2000)]
    again = [engine.start(Context(f"u{i}", "exp"), NOW).draws for i in range(2000)]
    assert first == again  # same member, same seed: same branch
    counts = Counter(d[0][1] for d in first)
    assert 1250 < counts[0] < 1550 and counts[0] + counts[1] == 2000  # about 70 %
    seeded = {engine.start(Context("u1", "exp", seed=f"s{i}"), NOW).draws for i in range(50)}
    assert seeded == {(("pick", 0),), (("pick", 1),)}  # the host's seed decides


def test_snapshots_without_the_new_keys_still_load_and_keep_their_version():
    engine = ask("email")
    data = engine.funnel.to_dict()
    assert "invalid_message" not in data["blocks"]["ask"] and "branches" not in data["blocks"]["ask"]
    again = Funnel.from_dict(json.loads(json.dumps(data)))
    assert again == engine.funnel and again.version == engine.funnel.version
    split = engine_for(SPLIT).funnel
    assert Funnel.from_dict(json.loads(json.dumps(split.to_dict()))) == split
