"""Safe YAML with positions: every mapping and list remembers where its keys and items are.

Only `yaml.safe_load` semantics: a tag outside the YAML core schema (`!!python/object`,
custom `!tags`) is refused, never constructed. Problems are collected, not raised one
at a time, so a user sees every mistake in a file at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from ..errors import Problem

MAX_BYTES = 1024 * 1024
MAX_NODES = 200_000  # alias bombs ("billion laughs") stop here
MAX_DEPTH = 50  # funnels nest about six levels; PyYAML's composer recurses once per level
Pos = tuple[int, int]  # 1-based line, column

_SAFE_TAGS = frozenset(t for t in yaml.SafeLoader.yaml_constructors if t is not None)


class Broken:
    """A value the loader already reported (an unsafe tag, a bad scalar): the checks that
    follow say nothing more about it, so one mistake is one problem."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "<broken>"


BROKEN = Broken()


class YMap(dict):
    """A mapping from YAML that knows where it is and where each key and value is."""

    pos: Pos = (1, 1)

    def __init__(self) -> None:
        super().__init__()
        self.key_pos: dict[object, Pos] = {}
        self.value_pos: dict[object, Pos] = {}

    def where(self, key: object) -> Pos:
        return self.value_pos.get(key, self.key_pos.get(key, self.pos))


class YList(list):
    """A list from YAML that knows where each item is."""

    pos: Pos = (1, 1)

    def __init__(self) -> None:
        super().__init__()
        self.item_pos: list[Pos] = []


@dataclass
class Document:
    file: str
    data: object = None
    pos: Pos = (1, 1)
    problems: list[Problem] = field(default_factory=list)

    def problem(self, pos: Pos, message: str, severity: str = "error") -> None:
        self.problems.append(Problem(self.file, pos[0], pos[1], message, severity))


def _pos(node: yaml.Node) -> Pos:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def load_text(text: str, file: str) -> Document:
    """Parse YAML text into YMap/YList/scalars, collecting problems."""
    doc = Document(file)
    try:
        too_deep = _too_deep(text)
        if too_deep is not None:
            doc.problem(too_deep, f"the YAML is nested more than {MAX_DEPTH} levels deep here; "
                        "a funnel or plugin.yaml needs only a few")
            return doc
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(x for x in (exc.context, exc.problem) if x)
        if "'\\t'" in what:
            what += "; indent with spaces, not tabs"
        doc.problem((line, col), f"YAML syntax error: {what}")
        return doc
    except yaml.YAMLError as exc:  # a reader error: control characters and the like
        doc.problem((1, 1), f"YAML syntax error: {str(exc).splitlines()[0]}")
        return doc
    except RecursionError:  # a last guard; _too_deep should have caught it
        doc.problem((1, 1), "the YAML is nested too deeply")
        return doc
    if node is None:
        doc.problem((1, 1), "the file is empty; expected a funnel mapping with id, start and blocks")
        return doc
    budget = [MAX_NODES]
    constructor = yaml.SafeLoader("")
    doc.pos = _pos(node)
    doc.data = _convert(node, doc, constructor, budget)
    return doc


def _too_deep(text: str) -> Pos | None:
    """Where the nesting first passes MAX_DEPTH, found from the parser's event stream
    (a loop, not recursion), before the recursive composer ever sees the document."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return (event.start_mark.line + 1, event.start_mark.column + 1)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return None


def load_bytes(raw: bytes, file: str) -> Document:
    """Check size and encoding, then parse; a binary file is one clear problem."""
    doc = Document(file)
    if len(raw) > MAX_BYTES:
        doc.problem(
            (1, 1),
            f"the file is {len(raw) / 1_048_576:.1f} MiB; funnel files are limited to 1 MiB",
        )
        return doc
    if b"\x00" in raw:
        doc.problem((1, 1), f"not a text file (NUL byte at offset {raw.index(0)})")
        return doc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        doc.problem((line, 1), f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})")
        return doc
    return load_text(text, file)


def _convert(node: yaml.Node, doc: Document, constructor: yaml.SafeLoader, budget: list[int]):
    budget[0] -= 1
    if budget[0] < 0:
        if budget[0] == -1:
            doc.problem(_pos(node), "the document is too large once aliases are expanded")
        return BROKEN
    if node.tag not in _SAFE_TAGS:
        doc.problem(_pos(node), f"unsafe or unknown YAML tag {node.tag!r}; only plain YAML is allowed")
        return BROKEN
    if isinstance(node, yaml.MappingNode):
        out = YMap()
        out.pos = _pos(node)
        try:
            constructor.flatten_mapping(node)  # `<<: *anchor` merge keys
        except yaml.YAMLError as exc:
            doc.problem(_pos(node), f"YAML error: {getattr(exc, 'problem', exc)}")
        for key_node, value_node in node.value:
            key = _convert(key_node, doc, constructor, budget)
            if isinstance(key, Broken):
                continue
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                doc.problem(_pos(key_node), "mapping keys must be plain scalars")
                continue
            if key in out:
                first = out.key_pos[key][0]
                doc.problem(_pos(key_node), f"duplicate key {key!r} (first at line {first})")
                continue
            out.key_pos[key] = _pos(key_node)
            out.value_pos[key] = _pos(value_node)
            out[key] = _convert(value_node, doc, constructor, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = YList()
        items.pos = _pos(node)
        for child in node.value:
            items.item_pos.append(_pos(child))
            items.append(_convert(child, doc, constructor, budget))
        return items
    try:
        return constructor.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        doc.problem(_pos(node), f"bad value {node.value!r}: {getattr(exc, 'problem', exc)}")
        return BROKEN
