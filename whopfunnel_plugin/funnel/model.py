"""Funnel YAML -> an immutable `Funnel`, with every problem reported as file:line:column.

`load_funnel(path)` is what everything else calls; `check_file(path)` returns the
funnel (or None) and all problems, errors and warnings, for `whopfunnel validate`.
The structure (keys, types) is checked in `schema.py` and `blocks.py`, the graph in
`checks.py`, texts, templates and inputs in `content.py`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType

from ..errors import FunnelError, Problem
from .yamlsource import load_bytes

BLOCK_TYPES = ("question", "input", "message", "end", "handoff", "link", "split")
TERMINAL_TYPES = frozenset({"end", "handoff", "link"})
ACTIONS = ("reprompt", "notify_owner", "abandon", "handoff", "goto")
ENDING_ACTIONS = frozenset({"abandon", "handoff", "goto"})
BUILTIN_INPUTS = ("email", "number", "text")

DEFAULT_AMBIGUOUS = "Did you mean {candidates}? Please reply with the number of your choice."
DEFAULT_REMINDER = "Are you still there? Reply to pick up where we left off."
# What `{invalid_message}` says on a question block without its own `invalid_message:`;
# input blocks say their validator's message ("That doesn't look like an email address").
CHOICE_INVALID = "Please choose from the provided options above."


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
    Step("{invalid_message}"),
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
class Branch:
    """One way out of a split block: taken by about weight / (sum of weights) of members."""

    weight: float
    next: str
    name: str | None = None


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
    invalid_message: str | None = None  # None: the validator's (input) or CHOICE_INVALID
    branches: tuple[Branch, ...] = ()  # split blocks

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

        def block(b: Block) -> dict:
            out = {
                "type": b.type, "message": b.message, "next": b.next, "input": b.input,
                "save_as": b.save_as, "url": b.url, "escalation": steps(b.escalation),
                "options": [{"text": o.text, "next": o.next, "synonyms": list(o.synonyms)}
                            for o in b.options],
            }
            # Newer keys only when used: a funnel without them keeps its version hash.
            if b.invalid_message is not None:
                out["invalid_message"] = b.invalid_message
            if b.branches:
                out["branches"] = [vars(br).copy() for br in b.branches]
            return out

        return {
            "id": self.id, "name": self.name, "start": self.start,
            "escalation": steps(self.escalation), "vars": dict(self.vars),
            "timeout": self.timeout, "on_rejoin": self.on_rejoin, "reminder": self.reminder,
            "ambiguous_message": self.ambiguous_message, "file": self.file,
            "blocks": {b.id: block(b) for b in self.blocks.values()},
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
                invalid_message=b.get("invalid_message"),  # absent from older snapshots
                branches=tuple(Branch(**br) for br in b.get("branches", ())),
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

    @cached_property  # a frozen funnel's hash never changes; views of conversations ask often
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
    from . import checks as funnel_checks
    from . import content
    from . import schema as funnel_schema

    doc = load_bytes(raw, file)
    if doc.problems:
        return None, doc.problems
    known_ladders = {"default": DEFAULT_LADDER, **(ladders or {})}
    # The structure is checked first; whatever it could make sense of (a best-effort
    # funnel, with placeholders for what is broken) is then checked as a graph and for
    # its texts, so one run reports every problem and none that a fix elsewhere removes.
    funnel = funnel_schema.build(doc, known_ladders)
    if funnel is not None:
        funnel_checks.check(doc, funnel)
        content.check(doc, funnel, set(validators), set(template_vars))
    problems = sorted(doc.problems, key=lambda p: (p.line, p.column, p.message))
    if any(p.severity == "error" for p in problems):
        return None, problems
    return funnel, problems
