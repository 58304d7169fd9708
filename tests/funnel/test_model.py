"""The funnel loader and validator: every rule, with its exact file:line:column message."""

from __future__ import annotations

import textwrap

import pytest

from whopfunnel_plugin.errors import FunnelError
from whopfunnel_plugin.funnel.model import DEFAULT_LADDER, Funnel, Step, check_bytes, load_funnel

from ..conftest import FUNNELS


def problems(text: str, **context) -> list[str]:
    _, found = check_bytes(textwrap.dedent(text).encode(), "f.yaml", **context)
    return [str(p) for p in found]


GOOD = """\
id: demo
start: ask
blocks:
  ask:
    message: "Pick one, {user_name}"
    options:
      - {text: Alpha, next: done, synonyms: [a1]}
      - {text: Beta, next: done}
  done:
    type: end
    message: Bye
"""


def test_a_good_funnel_has_no_problems():
    assert problems(GOOD) == []


def test_a_loaded_funnel_is_immutable_and_round_trips():
    funnel, _ = check_bytes(GOOD.encode(), "f.yaml")
    assert funnel.blocks["ask"].options[0].synonyms == ("a1",)
    with pytest.raises(AttributeError):
        funnel.start = "done"
    with pytest.raises(TypeError):
        funnel.blocks["x"] = None
    again = Funnel.from_dict(funnel.to_dict())
    assert again == funnel
    assert again.version == funnel.version
    assert funnel.escalation == DEFAULT_LADDER


def test_version_changes_with_the_definition():
    a, _ = check_bytes(GOOD.encode(), "f.yaml")
    b, _ = check_bytes(GOOD.replace("Bye", "Goodbye").encode(), "f.yaml")
    assert a.version != b.version


@pytest.mark.parametrize("path", [p for p in sorted(FUNNELS.glob("*.yaml")) if ".test." not in p.name],
                         ids=lambda p: p.name)
def test_every_example_funnel_is_valid_without_warnings(path):
    funnel, found = check_bytes(path.read_bytes(), path.name)
    assert found == []
    assert funnel is not None


def test_example_funnels_have_the_promised_shapes():
    onboarding = load_funnel(FUNNELS / "onboarding.yaml")
    assert {b.type for b in onboarding.blocks.values()} >= {"question", "input", "message", "end",
                                                             "handoff"}
    two_stage = load_funnel(FUNNELS / "two_stage.yaml")
    assert two_stage.blocks["transition"].type == "link"
    qual = load_funnel(FUNNELS / "qualification.yaml")
    assert ["experience_qualification", "pain_point_qualification", "offer"] == list(qual.blocks)[:3]
    assert qual.ladder("offer")[-1].action == "handoff"


CASES = {
    "yaml syntax": (
        "id: x\nstart: [a\n",
        ["f.yaml:3:1: YAML syntax error: while parsing a flow sequence expected ',' or ']', "
         "but got '<stream end>'"],
    ),
    "unknown top-level key": (
        GOOD.replace("start: ask", "start: ask\nstrat: ask"),
        ["f.yaml:3:1: unknown key 'strat' at the top level; did you mean 'start'?"],
    ),
    "unknown block key": (
        GOOD.replace("    type: end", "    type: end\n    mesage: x"),
        ["f.yaml:11:5: unknown key 'mesage' in block 'done'; did you mean 'message'?"],
    ),
    "unknown option key": (
        GOOD.replace("{text: Beta, next: done}", "{text: Beta, nxt: done, next: done}"),
        ["f.yaml:8:22: unknown key 'nxt' in option 2 in block 'ask'; did you mean 'next'?"],
    ),
    "missing start": (
        GOOD.replace("start: ask\n", ""),
        ["f.yaml:1:1: missing 'start' at the top level"],
    ),
    "start points nowhere": (
        GOOD.replace("start: ask", "start: asq"),
        ["f.yaml:2:8: start block 'asq' does not exist; did you mean 'ask'?"],
    ),
    "dangling next": (
        GOOD.replace("{text: Beta, next: done}", "{text: Beta, next: dne}"),
        ["f.yaml:8:28: 'next' of option 2 in block 'ask' points to unknown block 'dne'; "
         "did you mean 'done'?"],
    ),
    "unreachable block": (
        GOOD + "  orphan:\n    type: end\n    message: never\n",
        ["f.yaml:12:3: block 'orphan' is unreachable from start block 'ask'"],
    ),
    "question without options": (
        GOOD.replace("  done:\n", "  empty:\n    type: question\n    message: Hm?\n  done:\n")
        .replace("next: done, synonyms", "next: empty, synonyms"),
        ["f.yaml:10:5: question block 'empty' has no options"],
    ),
    "duplicate option text": (
        GOOD.replace("{text: Beta, next: done}", "{text: alpha!, next: done}"),
        ["f.yaml:8:9: option 2 in block 'ask': 'alpha!' is already used by option 1"],
    ),
    "duplicate synonym across options": (
        GOOD.replace("{text: Beta, next: done}", "{text: Beta, next: done, synonyms: [A1]}"),
        ["f.yaml:8:9: option 2 in block 'ask': 'A1' is already used by option 1"],
    ),
    "cycle with no way out": (
        """\
        id: loop
        start: a
        blocks:
          a:
            message: A?
            options:
              - {text: to b, next: b}
          b:
            message: B?
            options:
              - {text: to a, next: a}
          end:
            type: end
            message: bye
        """,
        ["f.yaml:4:3: no end, handoff or link block can be reached from blocks 'a', 'b': "
         "they loop forever",
         "f.yaml:12:3: block 'end' is unreachable from start block 'a'"],
    ),
    "message blocks looping": (
        """\
        id: loop
        start: a
        blocks:
          a: {message: one, next: b}
          b: {message: two, next: a}
          done: {type: end, message: bye}
        """,
        ["f.yaml:4:3: no end, handoff or link block can be reached from blocks 'a', 'b': "
         "they loop forever",
         "f.yaml:6:3: block 'done' is unreachable from start block 'a'"],
    ),
    "undefined template variable": (
        GOOD.replace("Pick one, {user_name}", "Pick one, {usr_name}"),
        ["f.yaml:5:14: undefined template variable {usr_name} in block 'ask'; "
         "did you mean {user_name}?".replace("{user_name}?", "'user_name'?")],
    ),
    "attribute access in a template": (
        GOOD.replace("Pick one, {user_name}", "Pick {user_name.__class__}"),
        ["f.yaml:5:14: template field {user_name.__class__} uses attribute access or indexing; "
         "only plain names like {user_name} are allowed in block 'ask'"],
    ),
    "indexing in a template": (
        GOOD.replace("Pick one, {user_name}", "Pick {user_name[0]}"),
        ["f.yaml:5:14: template field {user_name[0]} uses attribute access or indexing; "
         "only plain names like {user_name} are allowed in block 'ask'"],
    ),
    "format spec in a template": (
        GOOD.replace("Pick one, {user_name}", "Pick {user_name!r}"),
        ["f.yaml:5:14: template field {user_name!r} has a conversion or format spec; "
         "write {user_name} in block 'ask'"],
    ),
    "unbalanced brace": (
        GOOD.replace("Pick one, {user_name}", "Pick one }"),
        ["f.yaml:5:14: bad template: Single '}' encountered in format string "
         "(write {{ or }} for a literal brace) in block 'ask'"],
    ),
    "unknown input validator": (
        GOOD.replace("  done:\n", "  mail:\n    message: Email?\n    input: emial\n"
                     "    save_as: mail\n    next: done\n  done:\n")
        .replace("next: done, synonyms", "next: mail, synonyms"),
        ["f.yaml:11:12: unknown input validator 'emial' in block 'mail'; expected email, number, "
         "text, regex:<pattern> or a plugin's validator; did you mean 'email'?"],
    ),
    "bad input regex": (
        GOOD.replace("  done:\n", "  code:\n    message: Code?\n    input: 'regex:[a-'\n"
                     "    next: done\n  done:\n")
        .replace("next: done, synonyms", "next: code, synonyms"),
        ["f.yaml:11:12: input regex in block 'code' does not compile: "
         "unterminated character set at position 0"],
    ),
    "message block with no way forward": (
        GOOD.replace("  done:\n", "  note:\n    message: FYI\n  done:\n")
        .replace("{text: Beta, next: done}", "{text: Beta, next: note}"),
        ["f.yaml:10:5: message block 'note' has no way forward; add 'next' (or make it type end)"],
    ),
    "input block with no way forward": (
        GOOD.replace("  done:\n", "  mail:\n    message: Email?\n    input: email\n  done:\n")
        .replace("{text: Beta, next: done}", "{text: Beta, next: mail}"),
        ["f.yaml:10:5: input block 'mail' has no way forward; add 'next'"],
    ),
    "ladder whose last step does not end": (
        GOOD.replace("start: ask\n", "start: ask\nescalation:\n  - message: try again\n"
                     "  - message: telling the owner\n    action: notify_owner\n"),
        ["f.yaml:5:5: the last escalation step of the funnel must end or move the conversation "
         "(abandon, handoff or goto), not 'notify_owner'"],
    ),
    "unknown ladder name": (
        GOOD.replace("start: ask\n", "start: ask\nescalation: strict\n"),
        ["f.yaml:3:13: unknown escalation ladder 'strict' of the funnel"],
    ),
    "unknown escalation action": (
        GOOD.replace("start: ask\n", "start: ask\nescalation:\n  - message: bye\n"
                     "    action: abandn\n"),
        ["f.yaml:5:13: unknown action 'abandn' in escalation step 1 of the funnel; expected one of "
         "reprompt, notify_owner, abandon, handoff, goto; did you mean 'abandon'?"],
    ),
    "goto to an unknown block": (
        GOOD.replace("start: ask\n", "start: ask\nescalation:\n  - message: over here\n"
                     "    goto: nowhere\n"),
        ["f.yaml:4:3: escalation step 1 of the funnel goes to unknown block 'nowhere'"],
    ),
    "yaml boolean as text": (
        GOOD.replace("{text: Beta, next: done}", "{text: yes, next: done}"),
        ["f.yaml:8:16: 'text' in option 2 in block 'ask' is the YAML boolean true; "
         "put the text in quotes"],
    ),
    "bad funnel id": (
        GOOD.replace("id: demo", "id: Demo Funnel"),
        ["f.yaml:1:5: funnel id 'Demo Funnel' may only use a-z, 0-9, _ and -"],
    ),
    "bad timeout": (
        GOOD.replace("start: ask\n", "start: ask\ntimeout: tomorrow\n"),
        ["f.yaml:3:10: timeout: expected a duration like 90s, 15m, 24h or 7d, got 'tomorrow'"],
    ),
    "duplicate key": (
        GOOD.replace("start: ask\n", "start: ask\nstart: done\n"),
        ["f.yaml:3:1: duplicate key 'start' (first at line 2)"],
    ),
    "unsafe tag": (
        GOOD.replace("start: ask\n", "start: ask\nname: !!python/object/apply:os.system [ls]\n"),
        ["f.yaml:3:7: unsafe or unknown YAML tag 'tag:yaml.org,2002:python/object/apply:os.system';"
         " only plain YAML is allowed"],
    ),
    "end block with next": (
        GOOD.replace("    type: end\n", "    type: end\n    next: ask\n"),
        ["f.yaml:11:5: 'next' in block 'done': an end block ends the conversation"],
    ),
    "link block without url": (
        GOOD.replace("    type: end\n", "    type: link\n"),
        ["f.yaml:10:5: link block 'done' needs a 'url'"],
    ),
    "save_as overwriting a built-in": (
        GOOD.replace("  done:\n", "  who:\n    message: Name?\n    input: text\n"
                     "    save_as: user_id\n    next: done\n  done:\n")
        .replace("next: done, synonyms", "next: who, synonyms"),
        ["f.yaml:12:14: save_as 'user_id' in block 'who' would overwrite a built-in template "
         "variable"],
    ),
    "no ending at all": (
        "id: x\nstart: a\nblocks:\n  a:\n    message: hi\n    options:\n      - {text: again, next: a}\n",
        ["f.yaml:1:1: the funnel has no end, handoff or link block, so no conversation can ever "
         "finish"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_validator_rule(name):
    text, expected = CASES[name]
    assert problems(text) == expected


def test_every_problem_in_a_file_is_reported_at_once():
    text = GOOD.replace("start: ask", "start: ask\nstrat: 1").replace("Beta, next: done",
                                                                         "Beta, next: nope")
    found = problems(text)
    assert len(found) == 2
    assert found[0].startswith("f.yaml:3:1: unknown key 'strat'")
    assert found[1].startswith("f.yaml:9:28: 'next' of option 2")


WARNINGS = {
    "unused var": (
        GOOD + "vars:\n  spare: x\n",
        ["f.yaml:13:3: warning: variable 'spare' in vars is never used"],
    ),
    "option text that looks like another number": (
        GOOD.replace("{text: Beta, next: done}", "{text: '1', next: done}"),
        ["f.yaml:8:9: warning: option 2 in block 'ask': '1' looks like the number of option 1, "
         "which will confuse members"],
    ),
    "emoji-only option": (
        GOOD.replace("{text: Beta, next: done}", "{text: '🚀', next: done}"),
        ["f.yaml:8:9: warning: option 2 in block 'ask': '🚀' has no letters or digits, so it can "
         "only be chosen by number"],
    ),
    "captured value not on every path": (
        """\
        id: paths
        start: ask
        blocks:
          ask:
            message: Email or skip?
            options:
              - {text: Email, next: mail}
              - {text: Skip, next: done}
          mail:
            message: Your email?
            input: email
            save_as: email
            next: done
          done:
            type: end
            message: "Bye {email}"
        """,
        ["f.yaml:16:14: warning: {email} in block 'done' may not be captured yet on every path to "
         "block 'done'; it renders as empty text there"],
    ),
    "plain http link": (
        GOOD.replace("    type: end\n", "    type: link\n    url: http://example.com\n"),
        ["f.yaml:11:10: warning: url of block 'done' is not https"],
    ),
}


@pytest.mark.parametrize("name", list(WARNINGS))
def test_validator_warning(name):
    text, expected = WARNINGS[name]
    funnel, found = check_bytes(textwrap.dedent(text).encode(), "f.yaml")
    assert [str(p) for p in found] == expected
    assert funnel is not None  # warnings never stop a funnel from loading


def test_plugin_provided_names_are_accepted():
    text = GOOD.replace("Pick one, {user_name}", "Pick one, {crm_tier}").replace(
        "  done:\n", "  vat:\n    message: VAT id?\n    input: vat_id\n    next: done\n  done:\n"
    ).replace("{text: Beta, next: done}", "{text: Beta, next: vat}")
    assert len(problems(text)) == 2
    assert problems(text, validators={"vat_id"}, template_vars={"crm_tier"}) == []


def test_named_ladders_from_the_configuration():
    strict = (Step("No.", "abandon"),)
    text = GOOD.replace("start: ask\n", "start: ask\nescalation: strict\n")
    funnel, found = check_bytes(text.encode(), "f.yaml", ladders={"strict": strict})
    assert found == []
    assert funnel.ladder("ask") == strict


def test_per_block_ladder_overrides_the_funnel_ladder():
    text = GOOD.replace("    options:\n", "    escalation:\n      - {message: go, goto: done}\n"
                        "    options:\n", 1)
    funnel, found = check_bytes(text.encode(), "f.yaml")
    assert found == []
    assert funnel.ladder("ask") == (Step("go", "goto", "done"),)
    assert funnel.ladder("done") == DEFAULT_LADDER


@pytest.mark.parametrize("raw, expected", [
    (b"", "f.yaml:1:1: the file is empty; expected a funnel mapping with id, start and blocks"),
    (b"- a\n- b\n", "f.yaml:1:1: a funnel must be a mapping with id, start and blocks, not a list"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "f.yaml:1:1: not a text file (NUL byte at offset 8)"),
    (b"id: \xff\xfe\n", "f.yaml:1:1: not UTF-8 text (byte 0xff at offset 4)"),
    (b"a: " + b"x" * (5 * 1024 * 1024), "f.yaml:1:1: the file is 5.0 MiB; funnel files are limited "
     "to 1 MiB"),
    (b"just a string\n", "f.yaml:1:1: a funnel must be a mapping with id, start and blocks, "
     "not a str"),
])
def test_malformed_files_are_one_clear_problem(raw, expected):
    funnel, found = check_bytes(raw, "f.yaml")
    assert funnel is None
    assert [str(p) for p in found] == [expected]


def test_alias_bombs_are_refused_not_expanded():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        bomb += f"{'abcdefghij'[i]}: &{'abcdefghij'[i]} [" + ", ".join(
            [f"*{'abcdefghij'[i - 1]}"] * 10) + "]\n"
    funnel, found = check_bytes(bomb.encode(), "f.yaml")
    assert funnel is None
    assert any("too large once aliases are expanded" in str(p) for p in found)


def test_load_funnel_raises_with_every_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("start: ask", "start: nope").replace("id: demo", "id: Bad"))
    with pytest.raises(FunnelError) as info:
        load_funnel(path)
    assert len(info.value.problems) == 2
    assert info.value.file == str(path)
    assert info.value.line == 1


def test_an_escalation_goto_back_to_its_own_block_is_refused():
    text = GOOD.replace("    options:\n", "    escalation:\n      - {message: again, goto: ask}\n"
                        "    options:\n", 1)
    assert problems(text) == ["f.yaml:4:3: escalation gotos loop ('ask' -> 'ask'): a member who keeps "
                              "answering wrongly would never reach an end"]


def test_escalation_gotos_between_two_blocks_are_refused():
    text = """\
    id: pingpong
    start: a
    blocks:
      a:
        message: A?
        escalation: [{message: to b, goto: b}]
        options: [{text: x, next: end}]
      b:
        message: B?
        escalation: [{message: to a, goto: a}]
        options: [{text: y, next: end}]
      end: {type: end, message: bye}
    """
    assert problems(text) == ["f.yaml:4:3: escalation gotos loop ('a' -> 'b' -> 'a'): a member who "
                              "keeps answering wrongly would never reach an end"]
