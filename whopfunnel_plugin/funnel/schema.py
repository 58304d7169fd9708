"""The structure of funnel YAML: top-level keys, types and ladders, as file:line:column
problems (blocks are `blocks.py`).

`build(doc, ladders)` turns a parsed document into a best-effort `Funnel` (None only
when there is no mapping of blocks at all) and records every structural problem on the
document; what is broken gets a placeholder, so the graph and content checks that run
next can still look at the rest. `check_keys`, `text_value` and `parse_ladder` serve
plugin.yaml and test files too.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from ..durations import parse_duration
from .model import ACTIONS, DEFAULT_AMBIGUOUS, DEFAULT_LADDER, DEFAULT_REMINDER, Funnel, Step
from .yamlsource import Broken, Document, Pos, YList, YMap

_ID = re.compile(r"[a-z0-9_-]+\Z")
_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

TOP_KEYS = ("id", "name", "description", "start", "timeout", "escalation", "on_rejoin",
            "vars", "blocks", "reminder", "ambiguous_message")
STEP_KEYS = ("message", "action", "goto")


def suggest(word: object, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_keys(doc: Document, mapping: YMap, allowed: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            doc.problem(mapping.key_pos[key], f"unknown key {key!r} {where}{suggest(key, allowed)}")


def text_value(doc: Document, mapping: YMap, key: str, where: str, required: bool = False):
    """A text field. YAML turns `yes`/`no` into booleans: say so instead of sending 'True'."""
    if key not in mapping or mapping[key] is None:
        if required:
            doc.problem(mapping.pos, f"missing {key!r} {where}")
        return None
    value = mapping[key]
    if isinstance(value, Broken):  # already reported by the loader
        return None
    if isinstance(value, bool):
        doc.problem(mapping.where(key), f"{key!r} {where} is the YAML boolean {str(value).lower()}; "
                    "put the text in quotes")
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        doc.problem(mapping.where(key), f"{key!r} {where} must be text, not a {kind(value)}")
        return None
    return value


def article(word: str) -> str:
    """`a question block`, `an end block`, `an input block`."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def kind(value: object) -> str:
    return {YMap: "mapping", YList: "list"}.get(type(value), type(value).__name__)


def parse_ladder(doc: Document, raw: object, pos: Pos, where: str) -> tuple[Step, ...] | None:
    """Parse an inline ladder (a list of steps); used by funnels and plugin.yaml."""
    if isinstance(raw, Broken):
        return None
    if not isinstance(raw, YList) or not raw:
        doc.problem(pos, f"escalation {where} must be a ladder name or a non-empty list of steps")
        return None
    steps, broken = [], False
    for i, (item, ipos) in enumerate(zip(raw, raw.item_pos), start=1):
        here = f"in escalation step {i} {where}"
        if isinstance(item, Broken) or not isinstance(item, YMap):
            if not isinstance(item, Broken):
                doc.problem(ipos, f"escalation step {i} {where} must be a mapping with a message")
            broken = True
            continue
        check_keys(doc, item, STEP_KEYS, here)
        message = text_value(doc, item, "message", here, required=True) or ""
        goto = text_value(doc, item, "goto", here)
        action = item.get("action", "goto" if goto else "reprompt")
        if action not in ACTIONS:
            if not isinstance(action, Broken):
                doc.problem(item.where("action"), f"unknown action {action!r} {here}; expected one "
                            f"of {', '.join(ACTIONS)}{suggest(action, ACTIONS)}")
            broken = True
            continue
        if action == "goto" and not goto:
            doc.problem(item.where("action"), f"action goto {here} needs 'goto: <block id>'")
        elif goto and action != "goto":
            doc.problem(item.where("goto"), f"'goto' {here} cannot be combined with action {action!r}")
        steps.append(Step(message, action, goto))
    if broken:
        return None
    if steps and not steps[-1].ends_or_moves:
        doc.problem(raw.item_pos[-1], f"the last escalation step {where} must end or move the "
                    f"conversation (abandon, handoff or goto), not {steps[-1].action!r}")
    return tuple(steps)


def ladder_value(doc, raw, pos, where, ladders) -> tuple[Step, ...] | None:
    if isinstance(raw, str):
        if raw not in ladders:
            doc.problem(pos, f"unknown escalation ladder {raw!r} {where}{suggest(raw, ladders)}")
            return None
        return ladders[raw]
    return parse_ladder(doc, raw, pos, where)


def build(doc: Document, ladders: Mapping[str, tuple[Step, ...]]) -> Funnel | None:
    from .blocks import build_blocks

    data = doc.data
    if not isinstance(data, YMap):
        if not isinstance(data, Broken):
            doc.problem(doc.pos, f"a funnel must be a mapping with id, start and blocks, not "
                        f"{article(kind(data))}")
        return None
    check_keys(doc, data, TOP_KEYS, "at the top level")
    fid = text_value(doc, data, "id", "at the top level", required=True)
    if fid is not None and not _ID.match(fid):
        doc.problem(data.where("id"), f"funnel id {fid!r} may only use a-z, 0-9, _ and -")
    start = text_value(doc, data, "start", "at the top level", required=True)
    name = text_value(doc, data, "name", "at the top level") or fid or ""
    timeout = None
    if data.get("timeout") is not None and not isinstance(data["timeout"], Broken):
        try:
            timeout = parse_duration(data["timeout"])
            if timeout <= 0:
                raise ValueError("the timeout must be longer than zero")
        except ValueError as exc:
            doc.problem(data.where("timeout"), f"timeout: {exc}")
            timeout = None
    on_rejoin = data.get("on_rejoin", "keep")
    if on_rejoin not in ("keep", "restart"):
        if not isinstance(on_rejoin, Broken):
            doc.problem(data.where("on_rejoin"), f"on_rejoin must be 'keep' or 'restart', "
                        f"not {on_rejoin!r}")
        on_rejoin = "keep"
    escalation = ladders.get("default", DEFAULT_LADDER)  # SPEC §4: plugin.yaml's `default`
    if "escalation" in data:
        # a broken ladder was reported; the default stands in so the rest can be checked
        escalation = ladder_value(doc, data["escalation"], data.where("escalation"), "of the funnel",
                             ladders) or DEFAULT_LADDER
    funnel_vars = _vars(doc, data)
    reminder = text_value(doc, data, "reminder", "at the top level") or DEFAULT_REMINDER
    ambiguous = text_value(doc, data, "ambiguous_message", "at the top level") or DEFAULT_AMBIGUOUS
    raw_blocks = data.get("blocks")
    if not isinstance(raw_blocks, YMap) or not raw_blocks:
        if raw_blocks is None:
            doc.problem(data.pos, "missing 'blocks' at the top level")
        elif not isinstance(raw_blocks, Broken):
            doc.problem(data.where("blocks"), "'blocks' must be a non-empty mapping of block ids to blocks")
        return None
    blocks = build_blocks(doc, raw_blocks, ladders)
    return Funnel(
        id=fid or "", name=name, start=start or "", blocks=MappingProxyType(blocks),
        escalation=escalation, vars=MappingProxyType(funnel_vars), timeout=timeout,
        on_rejoin=on_rejoin, reminder=reminder, ambiguous_message=ambiguous, file=doc.file,
    )


def _vars(doc: Document, data: YMap) -> dict[str, str]:
    raw = data.get("vars")
    if raw is None:
        return {}
    if not isinstance(raw, YMap):
        if not isinstance(raw, Broken):
            doc.problem(data.where("vars"), "'vars' must be a mapping of names to text")
        return {}
    out = {}
    for key in raw:
        if not isinstance(key, str) or not _VAR.match(key):
            doc.problem(raw.key_pos[key], f"variable name {key!r} must be a plain name like guide_url")
            continue
        value = text_value(doc, raw, key, "in vars")
        if value is not None:
            out[key] = value
    return out


