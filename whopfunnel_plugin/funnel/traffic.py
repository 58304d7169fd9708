"""How often each part of a funnel was used, and what that covers.

`Traffic` counts blocks entered, exits taken (options, inputs, message blocks passed,
split branches, escalation gotos) and escalation steps taken. `whopfunnel test` fills
it from the engine's decisions, `whopfunnel graph --stats` from a database; `coverage`
says which blocks, options (split branches count as options) and escalation steps were
exercised, and which never were. Pure: counts in, counts out, JSON both ways.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .model import Funnel
from .paths import exits

ExitKey = tuple[str, str, int]  # (block id, exit kind, index)


@dataclass
class Traffic:
    blocks: Counter = field(default_factory=Counter)  # block id -> times entered
    exits: Counter = field(default_factory=Counter)  # ExitKey -> times taken
    steps: Counter = field(default_factory=Counter)  # (block id, step index) -> times taken

    def record(self, funnel: Funnel, decision) -> None:
        """Count what one engine Decision did (entered, draws, the reply's interaction)."""
        if decision is None:
            return
        for bid in decision.entered:
            self.blocks[bid] += 1
            block = funnel.blocks.get(bid)
            if block is not None and block.type == "message":
                self.exits[(bid, "next", 0)] += 1
        for bid, index in getattr(decision, "draws", ()):
            self.exits[(bid, "branch", index)] += 1
        seen = decision.interaction
        if seen is None or seen.block not in funnel.blocks:
            return
        block = funnel.blocks[seen.block]
        if seen.classification == "valid":
            if block.type == "question" and seen.option is not None:
                self.exits[(block.id, "option", seen.option)] += 1
            elif block.type == "input":
                self.exits[(block.id, "input", 0)] += 1
        elif seen.classification == "invalid" and seen.attempt:
            ladder = funnel.ladder(block.id)
            index = min(seen.attempt, len(ladder)) - 1
            self.steps[(block.id, index)] += 1
            if ladder[index].goto and decision.step is not None and decision.step.goto:
                self.exits[(block.id, "goto", index)] += 1

    def merge(self, other: Traffic) -> None:
        self.blocks.update(other.blocks)
        self.exits.update(other.exits)
        self.steps.update(other.steps)

    def to_json(self) -> dict:
        return {"blocks": dict(self.blocks),
                "exits": [[b, k, i, n] for (b, k, i), n in sorted(self.exits.items())],
                "steps": [[b, i, n] for (b, i), n in sorted(self.steps.items())]}

    @classmethod
    def from_json(cls, data: dict) -> Traffic:
        return cls(Counter({str(k): int(v) for k, v in data.get("blocks", {}).items()}),
                   Counter({(str(b), str(k), int(i)): int(n) for b, k, i, n in data.get("exits", [])}),
                   Counter({(str(b), int(i)): int(n) for b, i, n in data.get("steps", [])}))


@dataclass
class Part:
    """One measure of coverage: how many of `total` were exercised, and the rest."""

    covered: int = 0
    total: int = 0
    missing: list[str] = field(default_factory=list)

    @property
    def percent(self) -> float:
        return 100.0 if self.total == 0 else 100.0 * self.covered / self.total

    def add(self, hit: bool, name: str) -> None:
        self.total += 1
        if hit:
            self.covered += 1
        else:
            self.missing.append(name)


@dataclass
class Coverage:
    blocks: Part
    options: Part
    steps: Part


def coverage(funnel: Funnel, traffic: Traffic) -> Coverage:
    blocks, options, steps = Part(), Part(), Part()
    for bid, block in funnel.blocks.items():
        blocks.add(traffic.blocks[bid] > 0, f"block {bid!r}")
        for ex in exits(funnel, block):
            if ex.kind == "option":
                options.add(traffic.exits[(bid, "option", ex.index)] > 0,
                            f"option {ex.index + 1} ({ex.label}) of {bid!r}")
            elif ex.kind == "branch":
                options.add(traffic.exits[(bid, "branch", ex.index)] > 0,
                            f"branch {ex.index + 1} ({ex.label}) of split {bid!r}")
        if block.waits:
            for i, step in enumerate(funnel.ladder(bid)):
                steps.add(traffic.steps[(bid, i)] > 0,
                          f"escalation step {i + 1} ({step.action}) of {bid!r}")
    return Coverage(blocks, options, steps)
