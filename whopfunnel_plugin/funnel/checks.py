"""Graph checks on a best-effort funnel: dangling references, unreachable blocks, blocks
that can never reach an ending, escalation gotos that loop, split branches.

Each check adds `file:line:column` problems to the document. Texts, templates and
inputs are `content.py`.
"""

from __future__ import annotations

from collections import deque

from .model import Funnel
from .paths import exits, reachable
from .schema import suggest
from .yamlsource import Document, Pos, YList, YMap


def raw_block(doc: Document, bid: str) -> YMap:
    raw = doc.data["blocks"].get(bid)
    return raw if isinstance(raw, YMap) else YMap()


def block_pos(doc: Document, bid: str) -> Pos:
    blocks: YMap = doc.data["blocks"]
    return blocks.key_pos.get(bid, blocks.pos)


def check(doc: Document, funnel: Funnel) -> None:
    top: YMap = doc.data
    if funnel.start and funnel.start not in funnel.blocks:
        doc.problem(top.where("start"), f"start block {funnel.start!r} does not exist"
                    f"{suggest(funnel.start, funnel.blocks)}")
    _check_references(doc, funnel)
    _check_ladder_targets(doc, funnel, top)
    if funnel.start in funnel.blocks:
        seen = reachable(funnel)
        for bid in funnel.blocks:
            if bid not in seen:
                doc.problem(block_pos(doc, bid), f"block {bid!r} is unreachable from start block "
                            f"{funnel.start!r}")
        _check_endings(doc, funnel, seen)
    _check_ladder_loops(doc, funnel)
    _check_splits(doc, funnel)


def _check_references(doc: Document, funnel: Funnel) -> None:
    """Every `next` (of a block, an option, a branch) names a block of the file."""
    for bid, block in funnel.blocks.items():
        raw = raw_block(doc, bid)
        refs: list[tuple[object, Pos, str]] = []
        if isinstance(raw.get("next"), str) and block.type != "question":
            refs.append((raw["next"], raw.where("next"), f"'next' of block {bid!r}"))
        for key, what in (("options", "option"), ("branches", "branch")):
            items = raw.get(key)
            if isinstance(items, YList):
                for i, item in enumerate(items, start=1):
                    if isinstance(item, YMap) and isinstance(item.get("next"), str):
                        refs.append((item["next"], item.where("next"),
                                     f"'next' of {what} {i} in block {bid!r}"))
        for target, pos, what in refs:
            if target not in funnel.blocks:
                doc.problem(pos, f"{what} points to unknown block {target!r}"
                            f"{suggest(target, funnel.blocks)}")


def _check_ladder_targets(doc: Document, funnel: Funnel, top: YMap) -> None:
    ladders = [(funnel.escalation, top.where("escalation") if "escalation" in top else top.pos,
                "of the funnel")]
    for bid, block in funnel.blocks.items():
        if block.escalation is not None:
            ladders.append((block.escalation, raw_block(doc, bid).where("escalation"),
                            f"in block {bid!r}"))
    for ladder, pos, where in ladders:
        for i, step in enumerate(ladder or (), start=1):
            if step.goto and step.goto not in funnel.blocks:
                doc.problem(pos, f"escalation step {i} {where} goes to unknown block {step.goto!r}"
                            f"{suggest(step.goto, funnel.blocks)}")


def _check_endings(doc: Document, funnel: Funnel, seen: set[str]) -> None:
    """Every reachable block must be able to reach an end, handoff or link block."""
    if not any(b.terminal for b in funnel.blocks.values()):
        doc.problem(doc.data.pos, "the funnel has no end, handoff or link block, "
                    "so no conversation can ever finish")
        return
    edges = {bid: [e.target for e in exits(funnel, b) if e.target in funnel.blocks]
             for bid, b in funnel.blocks.items()}
    back: dict[str, list[str]] = {bid: [] for bid in funnel.blocks}
    for src, targets in edges.items():
        for t in targets:
            back[t].append(src)
    can_end = {bid for bid, b in funnel.blocks.items() if b.terminal}
    todo = deque(can_end)
    while todo:
        for prev in back[todo.popleft()]:
            if prev not in can_end:
                can_end.add(prev)
                todo.append(prev)
    dead_ends = [bid for bid, b in funnel.blocks.items() if not b.terminal and not edges[bid]]
    stuck = [bid for bid in funnel.blocks if bid in seen and bid not in can_end]
    if stuck and not dead_ends:  # a dead end is reported on its own, more precisely
        names = ", ".join(repr(b) for b in stuck)
        doc.problem(block_pos(doc, stuck[0]), f"no end, handoff or link block can be reached "
                    f"from {'block' if len(stuck) == 1 else 'blocks'} {names}: they loop forever")


def _check_ladder_loops(doc: Document, funnel: Funnel) -> None:
    """A ladder's last step must end or move the conversation: a `goto` that leads (via
    other exhausted ladders) back to where it started would escalate forever."""
    last_goto = {}
    for bid, block in funnel.blocks.items():
        ladder = funnel.ladder(bid) if block.waits else ()
        if ladder and ladder[-1].goto in funnel.blocks:
            last_goto[bid] = ladder[-1].goto
    reported: set[str] = set()
    for start in last_goto:
        path, here = [start], last_goto[start]
        while here in last_goto and here not in path:
            path.append(here)
            here = last_goto[here]
        if here == start and not reported & set(path):
            reported |= set(path)
            loop = " -> ".join(repr(b) for b in [*path, start])
            doc.problem(block_pos(doc, start), f"escalation gotos loop ({loop}): a member who "
                        "keeps answering wrongly would never reach an end")


def _check_splits(doc: Document, funnel: Funnel) -> None:
    for bid, block in funnel.blocks.items():
        if block.type != "split":
            continue
        items = raw_block(doc, bid).get("branches")
        positions = [p for p, item in zip(items.item_pos, items) if isinstance(item, YMap)] \
            if isinstance(items, YList) else []
        first: dict[str, int] = {}
        for i, (branch, pos) in enumerate(zip(block.branches, positions), start=1):
            if branch.next == bid:
                doc.problem(pos, f"branch {i} of split block {bid!r} goes back to the split itself")
            elif branch.next in first:
                doc.problem(pos, f"branches {first[branch.next]} and {i} of split block {bid!r} "
                            f"both go to {branch.next!r}, so their members cannot be told apart",
                            "warning")
            first.setdefault(branch.next, i)
