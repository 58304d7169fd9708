"""Validation in one pass (issue 12): every problem at once, no false follow-on errors,
and the gaps a new author hit: tabs, wording, deep nesting, regexes, split blocks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from whopfunnel_plugin.funnel.model import Step, check_bytes

HERE = Path(__file__).parent


def problems(text: str, **context) -> list[str]:
    _, found = check_bytes(textwrap.dedent(text).encode(), "f.yaml", **context)
    return [str(p) for p in found]


def test_a_broken_file_reports_every_problem_in_one_run():
    found = problems((HERE / "broken.yaml").read_text())
    assert found == [
        "f.yaml:1:5: funnel id 'Bad Funnel' may only use a-z, 0-9, _ and -",
        "f.yaml:4:5: template field {vars[0]} uses attribute access or indexing; only plain names "
        "like {user_name} are allowed in escalation step 1 of the funnel",
        "f.yaml:4:5: template field {x.__class__} uses attribute access or indexing; only plain "
        "names like {user_name} are allowed in escalation step 1 of the funnel",
        "f.yaml:5:13: unknown action 'shout' in escalation step 1 of the funnel; expected one of "
        "reprompt, notify_owner, abandon, handoff, goto",
        "f.yaml:9:11: unknown block type 'qestion' in block 'welcome'; expected one of question, "
        "input, message, end, handoff, link, split; did you mean 'question'?",
        "f.yaml:10:14: undefined template variable {user_nam} in block 'welcome'; did you mean "
        "'user_name'?",
        "f.yaml:13:28: 'next' of option 2 in block 'welcome' points to unknown block 'goodby'",
        "f.yaml:16:12: unknown input validator 'emial' in block 'email'; expected email, number, "
        "text, regex:<pattern> or a plugin's validator; did you mean 'email'?",
        "f.yaml:21:12: input regex in block 'code' does not compile: unterminated character set "
        "at position 0",
        "f.yaml:23:5: unknown key 'colour' in block 'code'",
        "f.yaml:24:3: block 'orphan' is unreachable from start block 'welcome'",
        "f.yaml:30:5: 'next' in block 'done': an end block ends the conversation",
    ]


def test_a_misspelt_type_causes_no_follow_on_errors():
    found = problems("""\
        id: x
        start: a
        blocks:
          a:
            type: qestion
            message: hi
            options:
              - {text: go, next: b}
          b: {type: end, message: bye}
        """)
    assert found == ["f.yaml:5:11: unknown block type 'qestion' in block 'a'; expected one of "
                     "question, input, message, end, handoff, link, split; did you mean 'question'?"]


def test_a_broken_block_is_not_reported_as_unknown_where_it_is_named():
    found = problems("""\
        id: x
        start: a
        blocks:
          a:
            message: hi
            options:
              - {text: go, next: b}
          b: [not, a, block]
        """)
    assert found == ["f.yaml:8:6: block 'b' must be a mapping, not a list"]


def test_an_unsafe_value_is_one_problem_not_a_missing_key_too():
    found = problems("id: x\nstart: !!python/object:os.system {}\nblocks:\n  a: {type: end}\n")
    assert found == ["f.yaml:2:8: unsafe or unknown YAML tag 'tag:yaml.org,2002:python/object:"
                     "os.system'; only plain YAML is allowed"]


def test_a_tab_gets_an_indent_with_spaces_hint():
    found = problems("id: x\n\tstart: a\n")
    assert found == ["f.yaml:2:1: YAML syntax error: while scanning for the next token found "
                     "character '\\t' that cannot start any token; indent with spaces, not tabs"]


def test_deep_nesting_is_one_line():
    _, found = check_bytes(b"[" * 1024, "deep.yaml")
    assert [str(p) for p in found] == ["deep.yaml:1:51: the YAML is nested more than 50 levels "
                                       "deep here; a funnel or plugin.yaml needs only a few"]
    block_style = "a:\n" + "".join(" " * i + "- \n" for i in range(1, 600))
    _, found = check_bytes(block_style.encode(), "deep.yaml")
    assert [p.message for p in found] == ["the YAML is nested more than 50 levels deep here; a "
                                          "funnel or plugin.yaml needs only a few"]


@pytest.mark.parametrize("args", [["validate"], ["chat"]])
def test_deep_nesting_never_gives_a_traceback_on_the_command_line(tmp_path, args):
    path = tmp_path / "deep.yaml"
    path.write_text("[" * 1024)
    proc = subprocess.run([sys.executable, "-m", "whopfunnel_plugin", *args, str(path)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, input="")
    assert proc.returncode == 1
    assert f"{path}:1:51: the YAML is nested more than 50 levels deep" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr


def test_deep_nesting_in_plugin_yaml_is_one_line(tmp_path):
    (tmp_path / "plugin.yaml").write_text("[" * 1024)
    proc = subprocess.run([sys.executable, "-m", "whopfunnel_plugin", "sweep"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == ("error: plugin.yaml:1:51: the YAML is nested more than 50 levels deep "
                           "here; a funnel or plugin.yaml needs only a few\n")


INPUT = """\
id: x
start: ask
blocks:
  ask:
    message: "Your code?"
    input: "{input}"
    next: done
  done: {{type: end, message: bye}}
"""


def test_a_nested_quantifier_is_warned_about():
    assert problems(INPUT.format(input="regex:(a+)+$")) == [
        "f.yaml:6:12: warning: input regex in block 'ask' repeats a repeat ((a+)+$): whopfunnel "
        "matches it in linear time, but backtracking engines (Python's re, JavaScript) can take "
        "seconds on one reply; write it without a repeat inside a repeat"]
    assert problems(INPUT.format(input="regex:(?:\\\\d{3}-)+\\\\d{4}")) == []


@pytest.mark.parametrize("pattern, why", [
    ("(a)\\\\1", "backreferences like \\1"),
    ("a(?=b)", "lookahead or lookbehind (?=...), (?!...), (?<=...)"),
    ("a{5000}", "the pattern is too large to match safely; make it shorter or use smaller repeat "
     "counts"),
])
def test_regexes_that_cannot_be_bounded_are_refused(pattern, why):
    assert problems(INPUT.format(input=f"regex:{pattern}")) == [
        f"f.yaml:6:12: input regex in block 'ask' cannot be matched in bounded time: {why} "
        "(whopfunnel matches like RE2: no backreferences or lookaround)"]


def test_a_ladder_that_talks_about_options_on_an_input_block_is_warned_about():
    legacy = {"default": (Step("Please choose from the provided options above."),
                          Step("Bye.", "abandon"))}
    assert problems(INPUT.format(input="email"), ladders=legacy) == [
        "f.yaml:6:12: warning: input block 'ask' has no options, but escalation step 1 of the "
        "funnel's ladder talks about them: 'Please choose from the provided options above.'; say "
        "what the input needs instead, or use {invalid_message} in ladders"]
    assert problems(INPUT.format(input="email")) == []  # the built-in ladder fits every block


def test_invalid_message_only_on_blocks_that_wait():
    found = problems("""\
        id: x
        start: a
        blocks:
          a: {message: hi, next: b, invalid_message: "no"}
          b: {type: end, message: bye}
        """)
    assert found == ["f.yaml:4:29: 'invalid_message' in block 'a': a message block never waits "
                     "for a reply, so no reply is invalid"]


SPLIT = """\
id: x
start: pick
blocks:
  pick:
    type: split
    branches: {branches}
  a: {{type: end, message: A}}
  b: {{type: end, message: B}}
"""


@pytest.mark.parametrize("branches, expected", [
    ("[{weight: 50, next: a}, {weight: 50, next: b}]", []),
    ("[{weight: 1, next: a}]", ["f.yaml:6:15: split block 'pick' needs at least two branches to "
                                "split between, not 1", "f.yaml:8:3: block 'b' is unreachable "
                                "from start block 'pick'"]),
    ("[{weight: 0, next: a}, {weight: 50, next: b}]",
     ["f.yaml:6:25: 'weight' in branch 1 in block 'pick' must be a positive number, not 0",
      "f.yaml:7:3: block 'a' is unreachable from start block 'pick'"]),
    ("[{weight: x, next: a}, {weight: 50, next: c}]",
     ["f.yaml:6:25: 'weight' in branch 1 in block 'pick' must be a positive number, not 'x'",
      "f.yaml:6:57: 'next' of branch 2 in block 'pick' points to unknown block 'c'",
      "f.yaml:7:3: block 'a' is unreachable from start block 'pick'",
      "f.yaml:8:3: block 'b' is unreachable from start block 'pick'"]),
    ("[{weight: 50, next: a}, {weight: 50, next: a}]",
     ["f.yaml:6:39: warning: branches 1 and 2 of split block 'pick' both go to 'a', so their "
      "members cannot be told apart", "f.yaml:8:3: block 'b' is unreachable from start block "
      "'pick'"]),
])
def test_split_blocks_are_validated(branches, expected):
    assert problems(SPLIT.format(branches=branches)) == expected


def test_a_split_block_without_branches():
    assert problems("id: x\nstart: s\nblocks:\n  s: {type: split, message: hi}\n"
                    "  e: {type: end}\n") == [
        "f.yaml:4:6: split block 's' needs 'branches: [{weight: 50, next: a}, {weight: 50, next: "
        "b}]'",
        "f.yaml:4:20: 'message' in block 's': a split block sends nothing and waits for nothing: "
        "it sends each member down one of its branches",
        "f.yaml:5:3: block 'e' is unreachable from start block 's'"]
