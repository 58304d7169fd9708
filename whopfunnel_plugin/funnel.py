"""Funnel YAML -> an immutable `Funnel`, with every problem reported as file:line:column.

`load_funnel(path)` is what everything else calls; `check_file(path)` returns the
funnel (or None) and all problems, errors and warnings, for `whopfunnel validate`.
The structural checks (keys, types) live here; graph and template checks live in
`funnel_checks.py`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from .durations import parse_duration
from .errors import FunnelError, Problem
from .templates import BUILTIN_VARS
from .yamlsource import Document, Pos, YList, YMap, load_bytes

BLOCK_TYPES = ("question", "input", "message", "end", "handoff", "link")
TERMINAL_TYPES = frozenset({"end", "handoff", "link"})
ACTIONS = ("reprompt", "notify_owner", "abandon", "handoff", "goto")
ENDING_ACTIONS = frozenset({"abandon", "handoff", "goto"})
BUILTIN_INPUTS = ("email", "number", "text")

DEFAULT_AMBIGUOUS = "Did you mean {candidates}? Please reply with the number of your choice."
DEFAULT_REMINDER = "Are you still there? Reply to pick up where we left off."

_ID = re.compile(r"[a-z0-9_-]+\Z")
_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

TOP_KEYS = ("id", "name", "description", "start", "timeout", "escalation", "on_rejoin",
            "vars", "blocks", "reminder", "ambiguous_message")
BLOCK_KEYS = ("type", "message", "options", "next", "input", "save_as", "url", "escalation")
OPTION_KEYS = ("text", "next", "synonyms")
STEP_KEYS = ("message", "action", "goto")


@dataclass(frozen=True)
class Step:
    """One rung of an escalation ladder."""

    message: str
    action: str = "reprompt"
    goto: str | None = None

    @property
    def ends_or_moves(self) -> bool:
        return self.action in ENDING_ACTIONS


DEFAULT_LADDER = (
    Step("Please choose from the provided options above."),
    Step("I'll inform the Whop owner about your request. Please wait for assistance.",
         "notify_owner"),
    Step("I'm unable to help you further. Please contact the Whop owner directly.", "abandon"),
)


@dataclass(frozen=True)
class Option:
    text: str
    next: str
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Block:
    id: str
    type: str
    message: str = ""
    options: tuple[Option, ...] = ()
    next: str | None = None
    input: str | None = None
    save_as: str | None = None
    url: str | None = None
    escalation: tuple[Step, ...] | None = None  # None: the funnel's ladder

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_TYPES

    @property
    def waits(self) -> bool:
        """True for blocks that wait for the member's reply."""
        return self.type in ("question", "input")


@dataclass(frozen=True)
class Funnel:
    id: str
    name: str
    start: str
    blocks: Mapping[str, Block]
    escalation: tuple[Step, ...] = DEFAULT_LADDER
    vars: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    timeout: int | None = None  # seconds; None: plugin.yaml's
    on_rejoin: str = "keep"
    reminder: str = DEFAULT_REMINDER
    ambiguous_message: str = DEFAULT_AMBIGUOUS
    file: str = ""

    def ladder(self, block_id: str) -> tuple[Step, ...]:
        block = self.blocks[block_id]
        return block.escalation if block.escalation is not None else self.escalation

    def to_dict(self) -> dict:
        """A JSON-able snapshot; `Funnel.from_dict` gives back an equal funnel."""

        def steps(ladder):
            return None if ladder is None else [vars(s).copy() for s in ladder]

        return {
            "id": self.id, "name": self.name, "start": self.start,
            "escalation": steps(self.escalation), "vars": dict(self.vars),
            "timeout": self.timeout, "on_rejoin": self.on_rejoin, "reminder": self.reminder,
            "ambiguous_message": self.ambiguous_message, "file": self.file,
            "blocks": {
                b.id: {
                    "type": b.type, "message": b.message, "next": b.next, "input": b.input,
                    "save_as": b.save_as, "url": b.url, "escalation": steps(b.escalation),
                    "options": [
                        {"text": o.text, "next": o.next, "synonyms": list(o.synonyms)}
                        for o in b.options
                    ],
                }
                for b in self.blocks.values()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Funnel:
        def steps(raw):
            return None if raw is None else tuple(Step(**s) for s in raw)

        blocks = {
            bid: Block(
                id=bid, type=b["type"], message=b["message"], next=b["next"], input=b["input"],
                save_as=b["save_as"], url=b["url"], escalation=steps(b["escalation"]),
                options=tuple(
                    Option(o["text"], o["next"], tuple(o["synonyms"])) for o in b["options"]
                ),
            )
            for bid, b in data["blocks"].items()
        }
        return cls(
            id=data["id"], name=data["name"], start=data["start"],
            blocks=MappingProxyType(blocks), escalation=steps(data["escalation"]),
            vars=MappingProxyType(dict(data["vars"])), timeout=data["timeout"],
            on_rejoin=data["on_rejoin"], reminder=data["reminder"],
            ambiguous_message=data["ambiguous_message"], file=data.get("file", ""),
        )

    @property
    def version(self) -> str:
        """A content hash: equal funnels have equal versions, whatever file they came from."""
        data = self.to_dict()
        data.pop("file")
        blob = json.dumps(data, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# -- loading -----------------------------------------------------------------------------


def load_funnel(path: str | Path, **context) -> Funnel:
    """Load and validate a funnel file; raise FunnelError listing every error."""
    funnel, problems = check_file(path, **context)
    errors = [p for p in problems if p.severity == "error"]
    if errors or funnel is None:
        raise FunnelError(errors)
    return funnel


def check_file(path: str | Path, **context) -> tuple[Funnel | None, list[Problem]]:
    """Read and validate one file; never raises for anything wrong with the file itself."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except IsADirectoryError:
        return None, [Problem(name, 1, 1, "is a directory, not a funnel file")]
    except OSError as exc:
        return None, [Problem(name, 1, 1, f"cannot read the file: {exc.strerror or exc}")]
    return check_bytes(raw, name, **context)


def check_bytes(
    raw: bytes,
    file: str = "<funnel>",
    *,
    ladders: Mapping[str, tuple[Step, ...]] | None = None,
    validators: Iterable[str] = (),
    template_vars: Iterable[str] = (),
) -> tuple[Funnel | None, list[Problem]]:
    """Validate funnel YAML. `ladders`, `validators` and `template_vars` name what
    plugin.yaml and plugins provide beyond the built-ins."""
    from . import funnel_checks

    doc = load_bytes(raw, file)
    if doc.problems:
        return None, doc.problems
    known_ladders = {"default": DEFAULT_LADDER, **(ladders or {})}
    funnel = _build(doc, known_ladders)
    if funnel is not None:
        funnel_checks.check(doc, funnel, set(validators), set(template_vars))
    problems = sorted(doc.problems, key=lambda p: (p.line, p.column, p.message))
    if any(p.severity == "error" for p in problems):
        return None, problems
    return funnel, problems


# -- structure ---------------------------------------------------------------------------


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


def _build(doc: Document, ladders: Mapping[str, tuple[Step, ...]]) -> Funnel | None:
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
