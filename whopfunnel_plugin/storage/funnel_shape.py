"""What analytics needs from a stored funnel definition (the `funnels.definition` JSON).

Read from the JSON itself, leniently, so a definition written by a newer whopfunnel (a
block type this one does not know, such as `split` with `branches`) still gives its
order, its endings and its option texts.
"""

from __future__ import annotations

from collections import deque

from ..conversation.matching import match_reply

TERMINAL = ("end", "handoff", "link")


def _steps(ladder) -> list[str]:
    return [s.get("goto") for s in ladder or () if isinstance(s, dict) and s.get("goto")]


def successors(definition: dict, block: dict) -> list[str]:
    """The blocks one step away: split branches, options, `next`, escalation gotos."""
    found = [b.get("next") for b in block.get("branches") or () if isinstance(b, dict)]
    found += [o.get("next") for o in block.get("options") or () if isinstance(o, dict)]
    found.append(block.get("next"))
    if block.get("type") in ("question", "input"):
        ladder = block.get("escalation")
        found += _steps(definition.get("escalation") if ladder is None else ladder)
    return [b for b in found if isinstance(b, str)]


def block_order(definition: dict, seen: list[str] = ()) -> list[str]:
    """Blocks breadth-first from `start`; then blocks it cannot reach, in definition order;
    then blocks met in the data that the definition does not have (`seen`), sorted."""
    blocks = definition.get("blocks") or {}
    order: list[str] = []
    queue = deque([definition.get("start")])
    while queue:
        name = queue.popleft()
        if name in blocks and name not in order:
            order.append(name)
            queue.extend(successors(definition, blocks[name]))
    order += [name for name in blocks if name not in order]
    return order + sorted(set(seen) - set(order))


def block_type(definition: dict, name: str) -> str:
    block = (definition.get("blocks") or {}).get(name)
    return block.get("type", "question") if isinstance(block, dict) else "unknown"


def options(definition: dict, name: str) -> list[dict]:
    block = (definition.get("blocks") or {}).get(name)
    found = block.get("options") if isinstance(block, dict) else None
    return [o for o in found or () if isinstance(o, dict)]


class _Label:
    """An option reduced to its text alone (no synonyms), for `match_reply`."""

    __slots__ = ("text", "synonyms")

    def __init__(self, text: str):
        self.text, self.synonyms = text, ()


def text_or_synonym(reply: str, option_text: str) -> str:
    """How a reply that matched an option by wording matched it: "text" when the option's
    own text (as the matcher normalises it) accounts for it, else "synonym"."""
    match = match_reply(reply, [_Label(option_text)])  # a list: not worth caching
    return "text" if match.kind == "valid" and match.how == "text" else "synonym"
