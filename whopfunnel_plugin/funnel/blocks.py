"""Blocks, options and split branches: their keys, types and shapes, as problems.

Every block id declared in the file gets a `Block`, even a broken one (a stand-in
ending), so no reference to it is reported as "unknown" and no check after this one
reports what was only a consequence of a mistake already reported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .model import BLOCK_TYPES, TERMINAL_TYPES, Block, Branch, Option, Step
from .schema import article, check_keys, kind, ladder_value, suggest, text_value
from .templates import BUILTIN_VARS
from .yamlsource import Broken, Document, YList, YMap

_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

BLOCK_KEYS = ("type", "message", "options", "next", "input", "save_as", "url", "escalation",
              "invalid_message", "branches")
OPTION_KEYS = ("text", "next", "synonyms")
BRANCH_KEYS = ("weight", "next", "name")


def build_blocks(doc: Document, raw_blocks: YMap, ladders: Mapping[str, tuple[Step, ...]]
                 ) -> dict[str, Block]:
    blocks = {}
    for bid, raw in raw_blocks.items():
        block = _block(doc, str(bid), raw, raw_blocks.where(bid), ladders)
        blocks[str(bid)] = block if block is not None else Block(str(bid), "end")
    return blocks


def _guess_type(raw: YMap) -> str:
    """What a block with a misspelt type most likely is, so the graph can be checked."""
    for key, guess in (("options", "question"), ("input", "input"), ("branches", "split"),
                       ("url", "link"), ("next", "message")):
        if key in raw:
            return guess
    return "end"


def _block(doc, bid, raw, pos, ladders) -> Block | None:
    where = f"in block {bid!r}"
    if not isinstance(raw, YMap):
        if not isinstance(raw, Broken):
            doc.problem(pos, f"block {bid!r} must be a mapping, not {article(kind(raw))}")
        return None
    check_keys(doc, raw, BLOCK_KEYS, where)
    options = _options(doc, raw, where)
    btype = raw.get("type")
    known = True
    if btype is None:
        btype = "question" if "options" in raw else "input" if "input" in raw else (
            "split" if "branches" in raw else "message")
    elif btype not in BLOCK_TYPES:
        if not isinstance(btype, Broken):
            doc.problem(raw.where("type"), f"unknown block type {btype!r} {where}; expected one "
                        f"of {', '.join(BLOCK_TYPES)}{suggest(btype, BLOCK_TYPES)}")
        btype, known = _guess_type(raw), False
    escalation = None
    if "escalation" in raw:
        escalation = ladder_value(doc, raw["escalation"], raw.where("escalation"), where, ladders)
    block = Block(
        id=bid, type=btype,
        message=text_value(doc, raw, "message", where) or "",
        options=options,
        next=text_value(doc, raw, "next", where),
        input=text_value(doc, raw, "input", where),
        save_as=text_value(doc, raw, "save_as", where),
        url=text_value(doc, raw, "url", where),
        escalation=escalation,
        invalid_message=text_value(doc, raw, "invalid_message", where),
        branches=_branches(doc, raw, where),
    )
    if known:  # a block whose type is wrong would only collect follow-on shape errors
        _check_block_shape(doc, block, raw, where)
    return block


def _options(doc, raw: YMap, where: str) -> tuple[Option, ...]:
    items = raw.get("options")
    if items is None or isinstance(items, Broken):
        return ()
    if not isinstance(items, YList):
        doc.problem(raw.where("options"), f"'options' {where} must be a list")
        return ()
    out = []
    for i, (item, ipos) in enumerate(zip(items, items.item_pos), start=1):
        here = f"in option {i} {where}"
        if isinstance(item, Broken):
            continue
        if isinstance(item, str):
            doc.problem(ipos, f"option {i} {where} must be a mapping like "
                        "{text: ..., next: <block id>}")
            continue
        if not isinstance(item, YMap):
            doc.problem(ipos, f"option {i} {where} must be a mapping, not {article(kind(item))}")
            continue
        check_keys(doc, item, OPTION_KEYS, here)
        text = text_value(doc, item, "text", here, required=True)
        nxt = text_value(doc, item, "next", here, required=True)
        synonyms = item.get("synonyms") or []
        if isinstance(synonyms, str):
            synonyms = [synonyms]
        if isinstance(synonyms, Broken):
            synonyms = []
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


def _branches(doc, raw: YMap, where: str) -> tuple[Branch, ...]:
    items = raw.get("branches")
    if items is None or isinstance(items, Broken):
        return ()
    if not isinstance(items, YList):
        doc.problem(raw.where("branches"), f"'branches' {where} must be a list like "
                    "[{weight: 50, next: a}, {weight: 50, next: b}]")
        return ()
    out = []
    for i, (item, ipos) in enumerate(zip(items, items.item_pos), start=1):
        here = f"in branch {i} {where}"
        if isinstance(item, Broken):
            continue
        if not isinstance(item, YMap):
            doc.problem(ipos, f"branch {i} {where} must be a mapping like {{weight: 50, next: "
                        "<block id>}")
            continue
        check_keys(doc, item, BRANCH_KEYS, here)
        weight = item.get("weight")
        if weight is None:
            doc.problem(item.pos, f"missing 'weight' {here}")
        elif isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
            if not isinstance(weight, Broken):
                doc.problem(item.where("weight"), f"'weight' {here} must be a positive number, "
                            f"not {weight!r}")
            weight = None
        nxt = text_value(doc, item, "next", here, required=True)
        name = text_value(doc, item, "name", here)
        if weight is not None and nxt is not None:
            out.append(Branch(float(weight), nxt, name))
    return tuple(out)


def _check_block_shape(doc: Document, block: Block, raw: YMap, where: str) -> None:
    t = block.type
    a_t = article(t)

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
        refuse("options", f"{a_t} block takes no options")
    if t == "input":
        if not block.input:
            doc.problem(raw.pos, f"input block {block.id!r} needs 'input: email|number|text|regex:...'")
        if not block.next:
            doc.problem(raw.pos, f"input block {block.id!r} has no way forward; add 'next'")
        if not block.message:
            doc.problem(raw.pos, f"input block {block.id!r} needs a 'message' asking for the input")
    elif t != "question":
        refuse("input", f"{a_t} block takes no input; use type input")
    if t not in ("question", "input"):
        refuse("invalid_message", f"{a_t} block never waits for a reply, so no reply is invalid")
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
        refuse("next", f"{a_t} block ends the conversation")
        refuse("escalation", f"{a_t} block never waits for a reply")
    if t == "link" and not block.url:
        doc.problem(raw.pos, f"link block {block.id!r} needs a 'url'")
    if t != "link":
        refuse("url", "only link blocks take a url")
    if t == "message":
        refuse("escalation", "a message block never waits for a reply")
    if t == "split":
        _check_split(doc, block, raw, refuse)
    else:
        refuse("branches", f"only split blocks have branches; this is {a_t} block")


def _check_split(doc: Document, block: Block, raw: YMap, refuse) -> None:
    for key in ("message", "next", "escalation"):
        refuse(key, "a split block sends nothing and waits for nothing: it sends each member "
               "down one of its branches")
    items = raw.get("branches")
    if items is None:
        doc.problem(raw.pos, f"split block {block.id!r} needs 'branches: [{{weight: 50, next: a}}, "
                    "{weight: 50, next: b}]'")
    elif isinstance(items, YList) and len(items) < 2:
        doc.problem(raw.where("branches"), f"split block {block.id!r} needs at least two branches "
                    f"to split between, not {len(items)}")
