"""Content checks: option labels, `input:` validators and regexes, link urls, templates,
and whether each escalation message fits the block it is said on.
"""

from __future__ import annotations

import re

from ..conversation.matching import label_key
from ..conversation.saferegex import Unsupported, compile_pattern, has_nested_quantifier
from .checks import raw_block
from .model import BUILTIN_INPUTS, Block, Funnel
from .schema import suggest
from .templates import BUILTIN_VARS, problems_in
from .yamlsource import Document, Pos, YList, YMap

# Wording that only makes sense next to numbered options.
_OPTION_WORDS = re.compile(r"\b(options?|choices?)\b|\b(choose|pick|select) (from|one)\b"
                           r"|\{options\}", re.I)


def check(doc: Document, funnel: Funnel, validators: set[str], template_vars: set[str]) -> None:
    for bid, block in funnel.blocks.items():
        raw = raw_block(doc, bid)
        _check_options(doc, block, raw)
        _check_input(doc, block, raw, validators)
        _check_url(doc, block, raw)
        _check_fit(doc, funnel, block, raw)
    _check_templates(doc, funnel, template_vars)


def _check_options(doc: Document, block: Block, raw: YMap) -> None:
    items = raw.get("options")
    if not block.options or not isinstance(items, YList):
        return
    positions = [p for p, item in zip(items.item_pos, items) if isinstance(item, YMap)]
    seen: dict[str, int] = {}
    for i, (opt, pos) in enumerate(zip(block.options, positions), start=1):
        for label in dict.fromkeys((opt.text, *opt.synonyms)):
            key = label_key(label)
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
        pattern = block.input[len("regex:"):]
        try:
            compile_pattern(pattern)
        except re.error as exc:
            doc.problem(pos, f"input regex in block {block.id!r} does not compile: {exc}")
            return
        except Unsupported as exc:
            doc.problem(pos, f"input regex in block {block.id!r} cannot be matched in bounded "
                        f"time: {exc} (whopfunnel matches like RE2: no backreferences or "
                        "lookaround)")
            return
        if has_nested_quantifier(pattern):
            doc.problem(pos, f"input regex in block {block.id!r} repeats a repeat "
                        f"({pattern}): whopfunnel matches it in linear time, but backtracking "
                        "engines (Python's re, JavaScript) can take seconds on one reply; "
                        "write it without a repeat inside a repeat", "warning")
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


def _check_fit(doc: Document, funnel: Funnel, block: Block, raw: YMap) -> None:
    """An input block has no options: a message that talks about them misleads the member."""
    if block.type != "input":
        return
    if "{options}" in block.message:
        doc.problem(raw.where("message"), f"input block {block.id!r} has no options, so "
                    "{options} in its message renders as empty text", "warning")
    texts = [("its invalid_message", block.invalid_message or "", raw.where("invalid_message"))]
    source = "its own ladder" if block.escalation is not None else "the funnel's ladder"
    texts += [(f"escalation step {i} of {source}", step.message, raw.where("input"))
              for i, step in enumerate(funnel.ladder(block.id), start=1)]
    for what, text, pos in texts:
        if _OPTION_WORDS.search(text):
            doc.problem(pos, f"input block {block.id!r} has no options, but {what} talks about "
                        f"them: {text!r}; say what the input needs instead, or use "
                        "{invalid_message} in ladders", "warning")


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
            flows += [(b.next, after) for b in block.branches]
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


def _inline(raw):
    """(number, message, position) of each step of a ladder written in this file, read
    from the YAML itself, so a ladder broken elsewhere still has its templates checked."""
    if not isinstance(raw, YList):
        return []
    return [(i, item["message"], pos) for i, (item, pos) in enumerate(zip(raw, raw.item_pos), 1)
            if isinstance(item, YMap) and isinstance(item.get("message"), str)]


def _check_templates(doc: Document, funnel: Funnel, template_vars: set[str]) -> None:
    top: YMap = doc.data
    captured = {b.save_as for b in funnel.blocks.values() if b.save_as}
    common = BUILTIN_VARS | set(funnel.vars) | captured | template_vars
    before = _captured_before(funnel)
    used: set[str] = set()

    def check_one(template: str, pos: Pos, where: str, extra=frozenset(), block=None) -> None:
        names, errors = problems_in(template)
        for error in errors:
            doc.problem(pos, f"{error} {where}")
        for name in names:
            used.add(name)
            if name not in common and name not in extra:
                doc.problem(pos, f"undefined template variable {{{name}}} {where}"
                            f"{suggest(name, common | extra)}")
            elif block is not None and name in captured and name not in before[block]:
                doc.problem(pos, f"{{{name}}} {where} may not be captured yet on every path to "
                            f"block {block!r}; it renders as empty text there", "warning")

    step_vars = {"invalid_message"}
    for bid, block in funnel.blocks.items():
        r = raw_block(doc, bid)
        extra = {"url"} if block.type == "link" else set()
        check_one(block.message, r.where("message"), f"in block {bid!r}", extra, bid)
        if block.invalid_message is not None:
            check_one(block.invalid_message, r.where("invalid_message"),
                      f"in the invalid_message of block {bid!r}", set(), bid)
        for i, message, pos in _inline(r.get("escalation")):
            check_one(message, pos, f"in escalation step {i} of block {bid!r}", step_vars)
    for i, message, pos in _inline(top.get("escalation")):
        check_one(message, pos, f"in escalation step {i} of the funnel", step_vars)
    check_one(funnel.reminder, top.where("reminder"), "in reminder")
    check_one(funnel.ambiguous_message, top.where("ambiguous_message"), "in ambiguous_message",
              {"candidates"})
    vars_map = top.get("vars")
    for name in funnel.vars:
        if name not in used and isinstance(vars_map, YMap):
            doc.problem(vars_map.key_pos[name], f"variable {name!r} in vars is never used", "warning")
