"""Split tests: each branch's share and conversions, with 95% Wilson score intervals.

A `type: split` block sends each conversation down one weighted branch; the host records
the draw as an interaction (classification `split`, `option_index` = the branch, 0-based).
Here the draws and the conversations' outcomes, already counted by SQL, become rates.

Significance, plainly: a difference is called significant only when the leading branch's
95% interval does not overlap any other branch's. That is conservative (two 95% intervals
that just touch mean p < 0.01 for the difference); overlapping intervals mean "not yet
significant", not "no difference": more conversations may still settle it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal distribution


@dataclass(frozen=True)
class Rate:
    """`count` of `total`, with its 95% Wilson score interval (None when total is 0)."""

    count: int
    total: int
    rate: float | None
    low: float | None
    high: float | None


def wilson(count: int, total: int, z: float = Z95) -> Rate:
    if total <= 0:
        return Rate(count, total, None, None, None)
    p = count / total
    z2 = z * z
    denominator = 1 + z2 / total
    centre = (p + z2 / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / denominator
    low = 0.0 if count <= 0 else max(0.0, centre - half)  # exact at the ends, not 1e-16 off
    high = 1.0 if count >= total else min(1.0, centre + half)
    return Rate(count, total, p, low, high)


@dataclass
class Branch:
    index: int              # 0-based, as recorded
    next: str | None        # the block the branch leads to, from the funnel definition
    weight: float | None
    drawn: int = 0          # conversations sent down this branch
    share: Rate | None = None  # drawn / all draws of the block
    outcomes: dict[str, Rate] = field(default_factory=dict)  # ending -> conversion


@dataclass
class Verdict:
    ending: str
    significant: bool
    leader: int | None      # branch index with the highest rate, when significant
    text: str


@dataclass
class SplitStats:
    block: str
    endings: list[str]      # the funnel's ending blocks: the conversions compared
    columns: list[str]      # the outcomes counted: the endings, then the others by status
    branches: list[Branch]
    verdicts: list[Verdict]


def compare(branches: list[Branch], ending: str) -> Verdict:
    """Whether one branch converts to `ending` better than all others, by the intervals."""
    rated = [(b, b.outcomes.get(ending)) for b in branches]
    rated = [(b, r) for b, r in rated if r is not None and r.total > 0]
    if len(rated) < 2:
        return Verdict(ending, False, None,
                       f"{ending}: not enough data yet (fewer than two branches have been drawn)")
    rated.sort(key=lambda br: (-br[1].rate, br[0].index))
    (best, top), others = rated[0], rated[1:]
    if all(top.low > r.high for _, r in others):
        return Verdict(ending, True, best.index,
                       f"{ending}: branch {best.index + 1} converts best ({top.rate:.1%}); "
                       "significant at 95% (its interval overlaps no other branch's)")
    return Verdict(ending, False, None,
                   f"{ending}: the difference is not yet significant "
                   "(the 95% intervals overlap); keep the test running")


def split_stats(block: str, definition: dict, endings: list[str],
                rows: list[tuple[int, str, str, int]]) -> SplitStats:
    """`rows`: (branch index, status, current block, conversations) for one split block.
    A conversation counts for an ending when it ended on that ending block; the others are
    counted by status: "abandoned", "handed_off" (by an escalation step) and "active"."""
    specs = definition.get("branches") or []
    drawn: dict[int, int] = {}
    ended: dict[tuple[int, str], int] = {}
    for index, status, at, n in rows:
        index = -1 if index is None else int(index)
        drawn[index] = drawn.get(index, 0) + n
        key = at if status != "active" and at in endings else status
        ended[index, key] = ended.get((index, key), 0) + n
    total = sum(drawn.values())
    others = ["abandoned"] + [k for k in ("handed_off", "completed", "transitioned")
                              if any(key == k for _, key in ended)]
    columns = [*endings, *others, "active"]
    branches = []
    for index in sorted(set(range(len(specs))) | set(drawn)):
        spec = specs[index] if 0 <= index < len(specs) and isinstance(specs[index], dict) else {}
        n = drawn.get(index, 0)
        branch = Branch(index, spec.get("next"), spec.get("weight"), n, wilson(n, total))
        branch.outcomes = {e: wilson(ended.get((index, e), 0), n) for e in columns}
        branches.append(branch)
    verdicts = [compare(branches, e) for e in endings]
    return SplitStats(block, endings, columns, branches, verdicts)
