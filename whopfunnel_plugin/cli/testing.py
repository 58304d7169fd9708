"""Run scripted conversations through the sandbox (the real plugin manager, engine and
SQLite storage, the fake Whop API) and collect pass/fail, diffs and coverage."""

from __future__ import annotations

import difflib
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..clock import FixedClock
from ..config import Config
from ..funnel.model import Funnel
from ..funnel.traffic import Traffic
from ..hookspecs import hookimpl
from .sandbox import Sandbox, Turn
from .testfile import Case, Step

EXPERIENCE = "exp_test"
START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
MAX_TRIES = 64  # members tried to land on the split branches a test asks for


@dataclass
class Result:
    case: Case
    failure: list[str] = field(default_factory=list)  # empty: passed
    transcript: list[str] = field(default_factory=list)
    user_id: str = ""

    @property
    def passed(self) -> bool:
        return not self.failure


class _Ends:
    """Registered like any plugin: the conversations that ended, as hooks saw them."""

    def __init__(self) -> None:
        self.ended: dict[str, object] = {}

    @hookimpl
    def on_conversation_end(self, conversation):
        self.ended[conversation.user_id] = conversation


class _WrongDraw(Exception):
    """The member drawn went down another branch than the test asks for: try another."""


def run_cases(config: Config, funnel: Funnel, cases: list[Case]) -> tuple[list[Result], Traffic]:
    traffic = Traffic()
    with tempfile.TemporaryDirectory(prefix="whopfunnel-test-") as tmp:
        clock = FixedClock(START)
        sandbox = Sandbox(config, funnel, f"sqlite:///{Path(tmp) / 'test.db'}", clock=clock)
        ends = _Ends()
        sandbox.pm.register(ends, name="whopfunnel.test-ends")
        try:
            results = []
            for number, case in enumerate(cases, start=1):
                results.append(_run_case(sandbox, ends, clock, funnel, case, number, traffic))
        finally:
            sandbox.close()
    return results, traffic


def _run_case(sandbox, ends, clock, funnel, case, number, traffic) -> Result:
    for attempt in range(MAX_TRIES if case.draws else 1):
        user_id = f"test_{number}" + (f"_{attempt}" if attempt else "")
        clock.set(START)
        mine = Traffic()
        try:
            result = _play(sandbox, ends, clock, funnel, case, user_id, mine)
        except _WrongDraw:
            continue
        traffic.merge(mine)
        return result
    wanted = ", ".join(f"branch {n} of {b!r}" for b, n in case.draws.items())
    return Result(case, [f"no member out of {MAX_TRIES} was drawn down {wanted}"])


def _play(sandbox: Sandbox, ends: _Ends, clock, funnel: Funnel, case: Case, user_id: str,
          traffic: Traffic) -> Result:
    result = Result(case, user_id=user_id)
    log = result.transcript
    owner_told = False
    queue: list[str] = []
    conversation = None

    def take(turn: Turn) -> None:
        nonlocal owner_told, conversation
        for bid, index in getattr(turn.decision, "draws", ()) or ():
            if bid in case.draws and case.draws[bid] != index + 1:
                raise _WrongDraw()
        traffic.record(funnel, turn.decision)
        queue[:] = list(turn.member)
        log.extend(f"bot: {text}" for text in turn.member)
        owner_told = owner_told or bool(turn.owner or turn.owner_notified)
        if turn.conversation is not None:
            conversation = turn.conversation

    take(sandbox.join(user_id, EXPERIENCE, case.user_name))
    for number, step in enumerate(case.steps, start=1):
        where = f"step {number} (line {step.pos[0]})"
        if step.kind == "member":
            if user_id in ends.ended:
                result.failure = [f"{where}: the member says {step.value!r}, but the conversation "
                                  f"already ended ({_ending(ends.ended[user_id])})"]
                return result
            log.append(f"member: {step.value}")
            take(sandbox.say(user_id, EXPERIENCE, step.value))
        elif step.kind == "wait":
            clock.advance(step.value)
            log.append(f"(wait {step.value}s)")
            take(sandbox.sweep(user_id))
        else:
            failure = _expect_bot(step, queue, where)
            if failure:
                result.failure = failure
                return result
    final = ends.ended.get(user_id, conversation)
    result.failure = _check_expect(case.expect, final, owner_told)
    return result


def _expect_bot(step: Step, queue: list[str], where: str) -> list[str]:
    if not queue:
        return [f"{where}: expected the bot to say ({step.value}), but it said nothing more"]
    said = queue.pop(0)
    if step.value.matches(said):
        return []
    lines = [f"{where}: the bot said something else"]
    if step.value.how == "exact":
        diff = difflib.unified_diff(step.value.text.strip().splitlines(), said.splitlines(),
                                    "expected", "actual", lineterm="", n=2)
        return lines + list(diff)
    return lines + [f"- expected ({step.value.how}): {step.value.text!r}",
                    f"+ actual: {said!r}"]


def _ending(conv) -> str:
    return f"{conv.status}, {conv.end_reason}"


def _check_expect(expect: dict, conv, owner_told: bool) -> list[str]:
    if conv is None:
        return ["no conversation was started"]
    wrong = []
    actual = {"status": conv.status, "reason": conv.end_reason, "block": conv.block,
              "owner_notified": owner_told}
    for key in ("status", "reason", "block", "owner_notified"):
        if key in expect and expect[key] != actual[key]:
            wrong += [f"- {key}: {expect[key]}", f"+ {key}: {actual[key]}"]
    for name, value in (expect.get("variables") or {}).items():
        got = conv.variables.get(str(name))
        if got != str(value):
            wrong += [f"- variables.{name}: {value!r}", f"+ variables.{name}: {got!r}"]
    return (["the conversation ended differently"] + wrong) if wrong else []
