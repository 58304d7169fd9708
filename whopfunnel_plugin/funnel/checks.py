"""Graph and template checks on a structurally sound funnel.

Each check adds `file:line:column` problems to the document: dangling references,
unreachable blocks, blocks that can never reach an ending, option clashes, template
fields, input validators, and warnings for legal but suspicious funnels.
"""

from __future__ import annotations

import re
from collections import deque

from ..conversation.matching import normalize_text
from .model import BUILTIN_INPUTS, Block, Funnel
from .schema import suggest
from .templates import BUILTIN_VARS, TemplateSyntaxError, fields
from .yamlsource import Document, Pos, YList, YMap


def check(doc: Document, funnel: Funnel, validators: set[str], template_vars: set[str]) -> None:
    raw_blocks: YMap = doc.data["blocks"]
    top: YMap = doc.data

    def block_pos(bid: str) -> Pos:
        return raw_blocks.key_pos.get(bid, raw_blocks.pos)

    def raw(bid: str) -> YMap:
        return raw_blocks[bid]

    if funnel.start not in funnel.blocks:
        doc.problem(top.where("start"), f"start block {funnel.start!r} does not exist"
                    f"{suggest(funnel.start, funnel.blocks)}")
    edges = {bid: _targets(doc, funnel, b, raw(bid)) for bid, b in funnel.blocks.items()}
    _check_ladder_targets(doc, funnel, top, raw)
    reachable = _reach(funnel.start, edges) if funnel.start in funnel.blocks else set()
    for bid in funnel.blocks:
        if funnel.start in funnel.blocks and bid not in reachable:
            doc.problem(block_pos(bid), f"block {bid!r} is unreachable from start block "
                        f"{funnel.start!r}")
    _check_endings(doc, funnel, edges, reachable, block_pos)
    _check_ladder_loops(doc, funnel, block_pos)
    for bid, block in funnel.blocks.items():
        _check_options(doc, block, raw(bid))
        _check_input(doc, block, raw(bid), validators)
        _check_url(doc, block, raw(bid))
    _check_templates(doc, funnel, top, raw, template_vars)


def _targets(doc: Document, funnel: Funnel, block: Block, raw: YMap) -> list[str]:
    """Blocks this one can move to, reporting the ones that do not exist."""
    found = []
    refs: list[tuple[str, Pos, str]] = []
    if block.next is not None:
        refs.append((block.next, raw.where("next"), f"'next' of block {block.id!r}"))
    opts = raw.get("options")
    if isinstance(opts, YList):
        for i, item in enumerate(opts):
            if isinstance(item, YMap) and isinstance(item.get("next"), str):
                refs.append((item["next"], item.where("next"),
                             f"'next' of option {i + 1} in block {block.id!r}"))
    for step in funnel.ladder(block.id) if block.waits else ():
        if step.goto:
            found.append(step.goto)  # reported once, by _check_ladder_targets
    for target, pos, what in refs:
        if target in funnel.blocks:
            found.append(target)
        else:
            doc.problem(pos, f"{what} points to unknown block {target!r}{suggest(target, funnel.blocks)}")
    return [t for t in found if t in funnel.blocks]


def _check_ladder_targets(doc, funnel: Funnel, top: YMap, raw) -> None:
    ladders = [(funnel.escalation, top.where("escalation") if "escalation" in top else top.pos,
                "of the funnel")]
    for bid, block in funnel.blocks.items():
        if block.escalation is not None:
            ladders.append((block.escalation, raw(bid).where("escalation"), f"in block {bid!r}"))
    for ladder, pos, where in ladders:
        for i, step in enumerate(ladder or (), start=1):
            if step.goto and step.goto not in funnel.blocks:
                doc.problem(pos, f"escalation step {i} {where} goes to unknown block {step.goto!r}"
                            f"{suggest(step.goto, funnel.blocks)}")


def _reach(start: str, edges: dict[str, list[str]]) -> set[str]:
    seen, todo = {start}, deque([start])
    while todo:
        for nxt in edges[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _check_endings(doc, funnel: Funnel, edges, reachable: set[str], block_pos) -> None:
    """Every reachable block must be able to reach an end, handoff or link block."""
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
    if not any(funnel.blocks[b].terminal for b in funnel.blocks):
        doc.problem(doc.data.pos, "the funnel has no end, handoff or link block, "
                    "so no conversation can ever finish")
        return
    dead_ends = [bid for bid, b in funnel.blocks.items() if not b.terminal and not edges[bid]]
    stuck = [bid for bid in funnel.blocks if bid in reachable and bid not in can_end]
    if stuck and not dead_ends:  # a dead end is reported on its own, more precisely
        names = ", ".join(repr(b) for b in stuck)
        doc.problem(block_pos(stuck[0]), f"no end, handoff or link block can be reached from "
                    f"{'block' if len(stuck) == 1 else 'blocks'} {names}: they loop forever")


def _check_ladder_loops(doc, funnel: Funnel, block_pos) -> None:
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
            doc.problem(block_pos(start), f"escalation gotos loop ({loop}): a member who keeps "
                        "answering wrongly would never reach an end")


def _check_options(doc: Document, block: Block, raw: YMap) -> None:
    items = raw.get("options")
    if not block.options or not isinstance(items, YList):
        return
    positions = [p for p, item in zip(items.item_pos, items) if isinstance(item, YMap)]
    seen: dict[str, int] = {}
    for i, (opt, pos) in enumerate(zip(block.options, positions), start=1):
        for label in dict.fromkeys((opt.text, *opt.synonyms)):
            key = normalize_text(label)
            if not key:
                doc.problem(pos, f"option {i} in block {block.id!r}: {label!r} has no letters or "
                            "digits, so it can only be chosen by number", "warning")
                continue
            if key.isdigit() and int(key) != i:
                doc.problem(pos, f"option {i} in block {block.id!r}: {label!r} looks like the number "
                            f"of option {key}, which will confuse members", "warning")
            if key in seen and seen[key] != i:
                doc.problem(pos, f"option {i} in block {block.id!r}: {label!r} is already used by "
                            f"option {seen[key]}")
            seen.setdefault(key, i)
    if len(block.options) > 9:
        doc.problem(raw.pos, f"question block {block.id!r} has {len(block.options)} options; "
                    "more than 9 is hard to answer in a DM", "warning")


def _check_input(doc: Document, block: Block, raw: YMap, validators: set[str]) -> None:
    if block.type != "input" or not block.input:
        return
    pos = raw.where("input")
    if block.input.startswith("regex:"):
        try:
            re.compile(block.input[len("regex:"):])
        except re.error as exc:
            doc.problem(pos, f"input regex in block {block.id!r} does not compile: {exc}")
        return
    known = (*BUILTIN_INPUTS, *sorted(validators))
    if block.input not in known:
        doc.problem(pos, f"unknown input validator {block.input!r} in block {block.id!r}; "
                    f"expected email, number, text, regex:<pattern> or a plugin's validator"
                    f"{suggest(block.input, known)}")


def _check_url(doc: Document, block: Block, raw: YMap) -> None:
    if block.url is None:
        return
    if not block.url.startswith(("http://", "https://")):
        doc.problem(raw.where("url"), f"url of block {block.id!r} must start with https://")
    elif block.url.startswith("http://"):
        doc.problem(raw.where("url"), f"url of block {block.id!r} is not https", "warning")


def _captured_before(funnel: Funnel) -> dict[str, set[str]]:
    """For each block, the save_as values captured on every path that reaches it."""
    everything = {b.save_as for b in funnel.blocks.values() if b.save_as}
    before = {bid: set(everything) for bid in funnel.blocks}
    if funnel.start in before:
        before[funnel.start] = set()
    changed = True
    while changed:
        changed = False
        for bid, block in funnel.blocks.items():
            after = before[bid] | ({block.save_as} if block.save_as else set())
            flows = [(o.next, after) for o in block.options]
            if block.next:
                flows.append((block.next, after))
            if block.waits:  # an escalation goto leaves before anything is captured
                flows += [(s.goto, before[bid]) for s in funnel.ladder(bid) if s.goto]
            for target, flow in flows:
                if target not in before or target == funnel.start:
                    continue
                narrowed = before[target] & flow
                if narrowed != before[target]:
                    before[target] = narrowed
                    changed = True
    return before


def _check_templates(doc, funnel: Funnel, top: YMap, raw, template_vars: set[str]) -> None:
    captured = {b.save_as for b in funnel.blocks.values() if b.save_as}
    common = BUILTIN_VARS | set(funnel.vars) | captured | template_vars
    before = _captured_before(funnel)
    used: set[str] = set()

    def check_one(template: str, pos: Pos, where: str, extra=frozenset(), block=None) -> None:
        try:
            names = [f.name for f in fields(template)]
        except TemplateSyntaxError as exc:
            doc.problem(pos, f"{exc} {where}")
            return
        for name in names:
            used.add(name)
            if name not in common and name not in extra:
                doc.problem(pos, f"undefined template variable {{{name}}} {where}"
                            f"{suggest(name, common | extra)}")
            elif block is not None and name in captured and name not in before[block]:
                doc.problem(pos, f"{{{name}}} {where} may not be captured yet on every path to "
                            f"block {block!r}; it renders as empty text there", "warning")

    for bid, block in funnel.blocks.items():
        r = raw(bid)
        extra = {"url"} if block.type == "link" else set()
        check_one(block.message, r.where("message"), f"in block {bid!r}", extra, bid)
        if block.escalation is not None and isinstance(r.get("escalation"), YList):
            for i, step in enumerate(block.escalation, start=1):
                check_one(step.message, r["escalation"].item_pos[i - 1],
                          f"in escalation step {i} of block {bid!r}")
    if isinstance(top.get("escalation"), YList):
        for i, step in enumerate(funnel.escalation, start=1):
            check_one(step.message, top["escalation"].item_pos[i - 1],
                      f"in escalation step {i} of the funnel")
    check_one(funnel.reminder, top.where("reminder"), "in reminder")
    check_one(funnel.ambiguous_message, top.where("ambiguous_message"), "in ambiguous_message",
              {"candidates"})
    vars_map = top.get("vars")
    for name in funnel.vars:
        if name not in used and isinstance(vars_map, YMap):
            doc.problem(vars_map.key_pos[name], f"variable {name!r} in vars is never used", "warning")
