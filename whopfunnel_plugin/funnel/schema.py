"""The structure of funnel YAML: keys, types and block shapes, as file:line:column problems.

`build(doc, ladders)` turns a parsed document into a `Funnel` (or None) and records
every structural problem on the document; `funnel_checks` then checks the graph and
the templates. `check_keys`, `text_value` and `parse_ladder` serve plugin.yaml too.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from ..durations import parse_duration
from .model import (
    ACTIONS,
    BLOCK_TYPES,
    DEFAULT_AMBIGUOUS,
    DEFAULT_LADDER,
    DEFAULT_REMINDER,
    TERMINAL_TYPES,
    Block,
    Funnel,
    Option,
    Step,
)
from .templates import BUILTIN_VARS
from .yamlsource import Document, Pos, YList, YMap

_ID = re.compile(r"[a-z0-9_-]+\Z")
_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

TOP_KEYS = ("id", "name", "description", "start", "timeout", "escalation", "on_rejoin",
            "vars", "blocks", "reminder", "ambiguous_message")
BLOCK_KEYS = ("type", "message", "options", "next", "input", "save_as", "url", "escalation")
OPTION_KEYS = ("text", "next", "synonyms")
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
    if isinstance(value, bool):
        doc.problem(mapping.where(key), f"{key!r} {where} is the YAML boolean {str(value).lower()}; "
                    "put the text in quotes")
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        doc.problem(mapping.where(key), f"{key!r} {where} must be text, not a {_kind(value)}")
        return None
    return value


def _kind(value: object) -> str:
    return {YMap: "mapping", YList: "list"}.get(type(value), type(value).__name__)


def parse_ladder(doc: Document, raw: object, pos: Pos, where: str) -> tuple[Step, ...] | None:
    """Parse an inline ladder (a list of steps); used by funnels and plugin.yaml."""
    if not isinstance(raw, YList) or not raw:
        doc.problem(pos, f"escalation {where} must be a ladder name or a non-empty list of steps")
        return None
    steps = []
    for i, (item, ipos) in enumerate(zip(raw, raw.item_pos), start=1):
        here = f"in escalation step {i} {where}"
        if not isinstance(item, YMap):
            doc.problem(ipos, f"escalation step {i} {where} must be a mapping with a message")
            return None
        check_keys(doc, item, STEP_KEYS, here)
        message = text_value(doc, item, "message", here, required=True) or ""
        goto = text_value(doc, item, "goto", here)
        action = item.get("action", "goto" if goto else "reprompt")
        if action not in ACTIONS:
            doc.problem(item.where("action"), f"unknown action {action!r} {here}; expected one of "
                        f"{', '.join(ACTIONS)}{suggest(action, ACTIONS)}")
            return None
        if action == "goto" and not goto:
            doc.problem(item.where("action"), f"action goto {here} needs 'goto: <block id>'")
        elif goto and action != "goto":
            doc.problem(item.where("goto"), f"'goto' {here} cannot be combined with action {action!r}")
        steps.append(Step(message, action, goto))
    if steps and not steps[-1].ends_or_moves:
        doc.problem(raw.item_pos[-1], f"the last escalation step {where} must end or move the "
                    f"conversation (abandon, handoff or goto), not {steps[-1].action!r}")
    return tuple(steps)


def _ladder(doc, raw, pos, where, ladders) -> tuple[Step, ...] | None:
    if isinstance(raw, str):
        if raw not in ladders:
            doc.problem(pos, f"unknown escalation ladder {raw!r} {where}{suggest(raw, ladders)}")
            return None
        return ladders[raw]
    return parse_ladder(doc, raw, pos, where)


def build(doc: Document, ladders: Mapping[str, tuple[Step, ...]]) -> Funnel | None:
    data = doc.data
    if not isinstance(data, YMap):
        doc.problem(doc.pos, f"a funnel must be a mapping with id, start and blocks, not a {_kind(data)}")
        return None
    check_keys(doc, data, TOP_KEYS, "at the top level")
    fid = text_value(doc, data, "id", "at the top level", required=True)
    if fid is not None and not _ID.match(fid):
        doc.problem(data.where("id"), f"funnel id {fid!r} may only use a-z, 0-9, _ and -")
    start = text_value(doc, data, "start", "at the top level", required=True)
    name = text_value(doc, data, "name", "at the top level") or fid or ""
    timeout = None
    if data.get("timeout") is not None:
        try:
            timeout = parse_duration(data["timeout"])
            if timeout <= 0:
                raise ValueError("the timeout must be longer than zero")
        except ValueError as exc:
            doc.problem(data.where("timeout"), f"timeout: {exc}")
    on_rejoin = data.get("on_rejoin", "keep")
    if on_rejoin not in ("keep", "restart"):
        doc.problem(data.where("on_rejoin"), f"on_rejoin must be 'keep' or 'restart', not {on_rejoin!r}")
    escalation = DEFAULT_LADDER
    if "escalation" in data:
        escalation = _ladder(doc, data["escalation"], data.where("escalation"), "of the funnel", ladders)
    funnel_vars = _vars(doc, data)
    reminder = text_value(doc, data, "reminder", "at the top level") or DEFAULT_REMINDER
    ambiguous = text_value(doc, data, "ambiguous_message", "at the top level") or DEFAULT_AMBIGUOUS
    raw_blocks = data.get("blocks")
    if not isinstance(raw_blocks, YMap) or not raw_blocks:
        if raw_blocks is None:
            doc.problem(data.pos, "missing 'blocks' at the top level")
        else:
            doc.problem(data.where("blocks"), "'blocks' must be a non-empty mapping of block ids to blocks")
        return None
    blocks = {}
    for bid, raw in raw_blocks.items():
        block = _block(doc, str(bid), raw, raw_blocks.where(bid), ladders)
        if block is not None:
            blocks[str(bid)] = block
    if fid is None or start is None or escalation is None:
        return None
    return Funnel(
        id=fid, name=name, start=start, blocks=MappingProxyType(blocks), escalation=escalation,
        vars=MappingProxyType(funnel_vars), timeout=timeout, on_rejoin=on_rejoin,
        reminder=reminder, ambiguous_message=ambiguous, file=doc.file,
    )


def _vars(doc: Document, data: YMap) -> dict[str, str]:
    raw = data.get("vars")
    if raw is None:
        return {}
    if not isinstance(raw, YMap):
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


def _block(doc, bid, raw, pos, ladders) -> Block | None:
    where = f"in block {bid!r}"
    if not isinstance(raw, YMap):
        doc.problem(pos, f"block {bid!r} must be a mapping, not a {_kind(raw)}")
        return None
    check_keys(doc, raw, BLOCK_KEYS, where)
    options = _options(doc, raw, where)
    btype = raw.get("type")
    if btype is None:
        btype = "question" if "options" in raw else "input" if "input" in raw else "message"
    elif btype not in BLOCK_TYPES:
        doc.problem(raw.where("type"), f"unknown block type {btype!r} {where}; expected one of "
                    f"{', '.join(BLOCK_TYPES)}{suggest(btype, BLOCK_TYPES)}")
        return None
    escalation = None
    if "escalation" in raw:
        escalation = _ladder(doc, raw["escalation"], raw.where("escalation"), where, ladders)
    block = Block(
        id=bid, type=btype,
        message=text_value(doc, raw, "message", where) or "",
        options=options,
        next=text_value(doc, raw, "next", where),
        input=text_value(doc, raw, "input", where),
        save_as=text_value(doc, raw, "save_as", where),
        url=text_value(doc, raw, "url", where),
        escalation=escalation,
    )
    _check_block_shape(doc, block, raw, where)
    return block


def _options(doc, raw: YMap, where: str) -> tuple[Option, ...]:
    items = raw.get("options")
    if items is None:
        return ()
    if not isinstance(items, YList):
        doc.problem(raw.where("options"), f"'options' {where} must be a list")
        return ()
    out = []
    for i, (item, ipos) in enumerate(zip(items, items.item_pos), start=1):
        here = f"in option {i} {where}"
        if isinstance(item, str):
            doc.problem(ipos, f"option {i} {where} must be a mapping like "
                        "{text: ..., next: <block id>}")
            continue
        if not isinstance(item, YMap):
            doc.problem(ipos, f"option {i} {where} must be a mapping, not a {_kind(item)}")
            continue
        check_keys(doc, item, OPTION_KEYS, here)
        text = text_value(doc, item, "text", here, required=True)
        nxt = text_value(doc, item, "next", here, required=True)
        synonyms = item.get("synonyms") or []
        if isinstance(synonyms, str):
            synonyms = [synonyms]
        if not isinstance(synonyms, list) or not all(isinstance(s, (str, int, float))
                                                     for s in synonyms):
            doc.problem(item.where("synonyms"), f"'synonyms' {here} must be a list of texts")
            synonyms = []
        for j, syn in enumerate(synonyms):
            if isinstance(syn, bool):
                doc.problem(synonyms.item_pos[j], f"synonym {str(syn).lower()} {here} is a YAML "
                            "boolean (yes/no/on/off); put it in quotes")
        synonyms = [s for s in synonyms if not isinstance(s, bool)]
        if text is not None and nxt is not None:
            out.append(Option(text, nxt, tuple(str(s) for s in synonyms)))
    return tuple(out)


def _check_block_shape(doc: Document, block: Block, raw: YMap, where: str) -> None:
    t = block.type

    def refuse(key: str, why: str) -> None:
        if key in raw:
            doc.problem(raw.key_pos[key], f"{key!r} {where}: {why}")

    if t == "question":
        if not raw.get("options"):
            doc.problem(raw.pos, f"question block {block.id!r} has no options")
        if not block.message:
            doc.problem(raw.pos, f"question block {block.id!r} needs a 'message' to ask")
        refuse("next", "a question moves on through its options' next, not its own")
        refuse("input", "a block has either options or input, not both")
    else:
        refuse("options", f"a {t} block takes no options")
    if t == "input":
        if not block.input:
            doc.problem(raw.pos, f"input block {block.id!r} needs 'input: email|number|text|regex:...'")
        if not block.next:
            doc.problem(raw.pos, f"input block {block.id!r} has no way forward; add 'next'")
        if not block.message:
            doc.problem(raw.pos, f"input block {block.id!r} needs a 'message' asking for the input")
    elif t != "question":
        refuse("input", f"a {t} block takes no input; use type input")
    if t != "input":
        refuse("save_as", "only input blocks capture a value")
    if block.save_as is not None and not _VAR.match(block.save_as):
        doc.problem(raw.where("save_as"), f"save_as {block.save_as!r} {where} must be a plain name")
    elif block.save_as in BUILTIN_VARS:
        doc.problem(raw.where("save_as"), f"save_as {block.save_as!r} {where} would overwrite a "
                    "built-in template variable")
    if t == "message" and not block.next:
        doc.problem(raw.pos, f"message block {block.id!r} has no way forward; add 'next' "
                    "(or make it type end)")
    if t in TERMINAL_TYPES:
        refuse("next", f"a {t} block ends the conversation")
        refuse("escalation", f"a {t} block never waits for a reply")
    if t == "link" and not block.url:
        doc.problem(raw.pos, f"link block {block.id!r} needs a 'url'")
    if t != "link":
        refuse("url", "only link blocks take a url")
    if t == "message":
        refuse("escalation", "a message block never waits for a reply")
