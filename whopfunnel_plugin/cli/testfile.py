"""Scripted funnel conversations in YAML (`NAME.test.yaml` next to `NAME.yaml`), read with
positions so every mistake in a test file is one `file:line:column` line.

    funnel: onboarding.yaml          # optional: this file's name without ".test"
    tests:
      - name: a trader books a call
        user_name: Ada               # optional
        draws: {pick: 2}             # optional: the split branches this test goes down
        steps:
          - bot: {contains: What brings you here?}   # or a string (exact), {exact|regex: ...}
          - member: "1"
          - wait: 25h                # the clock moves on; the sweep runs
        expect: {status: handed_off, reason: handoff, variables: {email: ada@example.com},
                 owner_notified: true, block: offer}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..durations import parse_duration
from ..errors import Problem
from ..funnel.schema import check_keys, text_value
from ..funnel.yamlsource import Document, Pos, YList, YMap, load_bytes

TOP_KEYS = ("funnel", "tests")
TEST_KEYS = ("name", "user_name", "draws", "steps", "expect")
EXPECT_KEYS = ("status", "reason", "block", "variables", "owner_notified")
STATUSES = ("active", "completed", "abandoned", "handed_off", "transitioned")
SUFFIXES = (".test.yaml", ".test.yml")


@dataclass(frozen=True)
class Matcher:
    how: str  # exact | contains | regex
    text: str

    def matches(self, said: str) -> bool:
        if self.how == "exact":
            return said.strip() == self.text.strip()
        if self.how == "contains":
            return self.text in said
        return re.search(self.text, said) is not None

    def __str__(self) -> str:
        return f"{self.how} {self.text!r}"


@dataclass(frozen=True)
class Step:
    kind: str  # bot | member | wait
    value: object  # Matcher, text, or seconds
    pos: Pos


@dataclass
class Case:
    name: str
    pos: Pos
    steps: list[Step] = field(default_factory=list)
    expect: dict = field(default_factory=dict)
    user_name: str | None = None
    draws: dict[str, int] = field(default_factory=dict)  # split block -> 1-based branch


@dataclass
class TestFile:
    path: Path
    funnel_path: Path
    cases: list[Case]


def is_test_file(path: Path) -> bool:
    return path.name.endswith(SUFFIXES)


def funnel_for(path: Path) -> Path:
    """`x.test.yaml` tests `x.yaml`."""
    for suffix in SUFFIXES:
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)] + ".yaml")
    return path


def tests_for(funnel: Path) -> Path | None:
    stem = funnel.name.rsplit(".", 1)[0]
    for suffix in SUFFIXES:
        candidate = funnel.with_name(stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def load_test_file(path: Path) -> tuple[TestFile | None, list[Problem]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [Problem(str(path), 1, 1, f"cannot read the file: {exc.strerror or exc}")]
    doc = load_bytes(raw, str(path))
    if doc.problems:
        return None, doc.problems
    data = doc.data
    if not isinstance(data, YMap) or not isinstance(data.get("tests"), YList) or not data["tests"]:
        doc.problem(doc.pos, "a test file is a mapping with 'tests:', a list of conversations")
        return None, doc.problems
    check_keys(doc, data, TOP_KEYS, "at the top level")
    funnel = text_value(doc, data, "funnel", "at the top level")
    funnel_path = path.parent / funnel if funnel else funnel_for(path)
    if not funnel_path.is_file():
        doc.problem(data.where("funnel") if funnel else doc.pos,
                    f"the funnel {funnel_path} does not exist")
    cases = [c for c in (_case(doc, item, pos, i) for i, (item, pos) in
                         enumerate(zip(data["tests"], data["tests"].item_pos), start=1)) if c]
    problems = sorted(doc.problems, key=lambda p: (p.line, p.column))
    return (None if problems else TestFile(path, funnel_path, cases)), problems


def _case(doc: Document, item, pos: Pos, number: int) -> Case | None:
    if not isinstance(item, YMap):
        doc.problem(pos, f"test {number} must be a mapping with name and steps")
        return None
    where = f"in test {number}"
    check_keys(doc, item, TEST_KEYS, where)
    case = Case(text_value(doc, item, "name", where) or f"test {number}", item.pos,
                user_name=text_value(doc, item, "user_name", where))
    steps = item.get("steps")
    if not isinstance(steps, YList):
        doc.problem(item.where("steps") if "steps" in item else item.pos,
                    f"'steps' {where} must be a list of bot:, member: or wait: steps")
        steps = YList()
    for j, (step, spos) in enumerate(zip(steps, steps.item_pos), start=1):
        parsed = _step(doc, step, spos, f"in step {j} of test {number}")
        if parsed is not None:
            case.steps.append(parsed)
    draws = item.get("draws") or YMap()
    if not isinstance(draws, YMap) or not all(isinstance(v, int) and not isinstance(v, bool)
                                              and v >= 1 for v in draws.values()):
        doc.problem(item.where("draws"), f"'draws' {where} maps split block ids to branch "
                    "numbers, like {pick: 2}")
    else:
        case.draws = {str(k): v for k, v in draws.items()}
    case.expect = _expect(doc, item, where)
    return case


def _step(doc: Document, step, pos: Pos, where: str) -> Step | None:
    if not isinstance(step, YMap) or len(step) != 1:
        doc.problem(pos, f"{where}: a step is one of bot: <what it says>, member: <a reply>, "
                    "wait: <a duration>")
        return None
    (kind, value), = step.items()
    vpos = step.where(kind)
    if kind == "member":
        text = text_value(doc, step, "member", where)
        return Step("member", text, vpos) if text is not None else None
    if kind == "wait":
        try:
            return Step("wait", parse_duration(value), vpos)
        except ValueError as exc:
            doc.problem(vpos, f"wait {where}: {exc}")
            return None
    if kind == "bot":
        matcher = _matcher(doc, value, vpos, where)
        return Step("bot", matcher, vpos) if matcher else None
    doc.problem(step.key_pos[kind], f"unknown step {kind!r} {where}; expected bot, member or wait")
    return None


def _matcher(doc: Document, value, pos: Pos, where: str) -> Matcher | None:
    if isinstance(value, str):
        return Matcher("exact", value)
    if isinstance(value, YMap) and len(value) == 1:
        (how, text), = value.items()
        if how in ("exact", "contains", "regex") and isinstance(text, str):
            if how == "regex":
                try:
                    re.compile(text)
                except re.error as exc:
                    doc.problem(pos, f"regex {where} does not compile: {exc}")
                    return None
            return Matcher(how, text)
    doc.problem(pos, f"bot {where} must be a text (said exactly) or one of {{exact: ...}}, "
                "{contains: ...}, {regex: ...}")
    return None


def _expect(doc: Document, item: YMap, where: str) -> dict:
    raw = item.get("expect")
    if raw is None:
        return {}
    if not isinstance(raw, YMap):
        doc.problem(item.where("expect"), f"'expect' {where} must be a mapping")
        return {}
    check_keys(doc, raw, EXPECT_KEYS, f"in expect {where}")
    out = dict(raw)
    if "status" in raw and raw["status"] not in STATUSES:
        doc.problem(raw.where("status"), f"status {raw['status']!r} {where} is not one of "
                    f"{', '.join(STATUSES)}")
    if "variables" in raw and not isinstance(raw["variables"], YMap):
        doc.problem(raw.where("variables"), f"'variables' {where} must map names to values")
    if "owner_notified" in raw and not isinstance(raw["owner_notified"], bool):
        doc.problem(raw.where("owner_notified"), f"'owner_notified' {where} is true or false")
    return out
