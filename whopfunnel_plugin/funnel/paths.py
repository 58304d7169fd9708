"""The ways out of each block, one list for the checks, the graph and coverage.

An `Exit` is an edge of the funnel graph: an option chosen, a captured input, a
message block (or an ending's nothing), a split branch drawn, or an escalation step
that moves the member (`goto`). Escalation steps that only reprompt or notify stay on
the block; the ones that end it (abandon, handoff) have no target block.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .model import Block, Funnel


@dataclass(frozen=True)
class Exit:
    kind: str  # option | input | next | branch | goto
    index: int  # option, branch or escalation step index (0-based); 0 otherwise
    target: str
    label: str = ""


def exits(funnel: Funnel, block: Block) -> list[Exit]:
    out: list[Exit] = []
    if block.type == "question":
        out += [Exit("option", i, o.next, o.text) for i, o in enumerate(block.options)]
    elif block.type == "input" and block.next:
        out.append(Exit("input", 0, block.next, block.input or ""))
    elif block.type == "message" and block.next:
        out.append(Exit("next", 0, block.next))
    elif block.type == "split":
        total = sum(b.weight for b in block.branches) or 1.0
        out += [Exit("branch", i, b.next, b.name or f"{100 * b.weight / total:.3g}%")
                for i, b in enumerate(block.branches)]
    if block.waits:
        out += [Exit("goto", i, s.goto, f"{i + 1}. invalid")
                for i, s in enumerate(funnel.ladder(block.id)) if s.goto]
    return out


def reachable(funnel: Funnel, start: str | None = None) -> set[str]:
    """Blocks reachable from `start` (the funnel's start) along known exits."""
    start = funnel.start if start is None else start
    if start not in funnel.blocks:
        return set()
    seen, todo = {start}, deque([start])
    while todo:
        for ex in exits(funnel, funnel.blocks[todo.popleft()]):
            if ex.target in funnel.blocks and ex.target not in seen:
                seen.add(ex.target)
                todo.append(ex.target)
    return seen


def order(funnel: Funnel) -> list[str]:
    """Block ids breadth-first from the start, then any unreachable ones in file order."""
    seen: list[str] = []
    if funnel.start in funnel.blocks:
        seen.append(funnel.start)
        i = 0
        while i < len(seen):
            for ex in exits(funnel, funnel.blocks[seen[i]]):
                if ex.target in funnel.blocks and ex.target not in seen:
                    seen.append(ex.target)
            i += 1
    return seen + [b for b in funnel.blocks if b not in seen]
