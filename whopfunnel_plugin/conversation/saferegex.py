"""Regular expressions for `input: regex:...`, matched in bounded time.

Python's `re` backtracks: `(a+)+$` against thirty `a`s and a `!` takes seconds, and it
holds the GIL, so no timeout can stop it. Here the pattern is parsed by `re`'s own
parser and run as a Thompson NFA (the RE2 / Go `regexp` approach): the states a match
could be in advance together, one character at a time, so the work is at most
(reply length) x (pattern size), whatever the pattern. Like RE2, backreferences and
lookaround are refused (`Unsupported`); they cannot be matched that way.

`compile_pattern(text)` raises `re.error` for a pattern that does not compile,
`Unsupported` for one this matcher cannot run; `Pattern.fullmatch(reply)` answers
True or False and never raises.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

try:  # Python 3.11+
    from re import _constants as _c
    from re import _parser as _p
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _p  # type: ignore[no-redef]

MAX_STATES = 600  # compiled instructions; `a{1000}` or `(x{50}){50}` is refused as too large
MAX_REPLY = 300  # characters a regex input looks at; longer replies are not in the format

_CHAR, _SPLIT, _JMP, _ASSERT, _MATCH = range(5)


class Unsupported(ValueError):
    """The pattern uses something a linear-time matcher cannot run (or is too large)."""


@dataclass(frozen=True)
class _Set:
    """One character test: literals, ranges and categories, maybe negated."""

    chars: frozenset[int] = frozenset()
    ranges: tuple[tuple[int, int], ...] = ()
    categories: tuple[str, ...] = ()
    negate: bool = False
    ignore_case: bool = False

    def test(self, ch: str) -> bool:
        found = self._test(ch)
        if not found and self.ignore_case:
            found = any(self._test(v) for v in {ch.lower(), ch.upper(), ch.casefold()} - {ch}
                        if len(v) == 1)
        return found != self.negate

    def _test(self, ch: str) -> bool:
        cp = ord(ch)
        if cp in self.chars or any(lo <= cp <= hi for lo, hi in self.ranges):
            return True
        return any(_category(name, ch) for name in self.categories)


def _category(name: str, ch: str) -> bool:
    if name == "CATEGORY_DIGIT":
        return unicodedata.category(ch) == "Nd"
    if name == "CATEGORY_NOT_DIGIT":
        return unicodedata.category(ch) != "Nd"
    if name == "CATEGORY_SPACE":
        return ch.isspace()
    if name == "CATEGORY_NOT_SPACE":
        return not ch.isspace()
    if name == "CATEGORY_WORD":
        return ch.isalnum() or ch == "_"
    if name == "CATEGORY_NOT_WORD":
        return not (ch.isalnum() or ch == "_")
    raise Unsupported(f"character class {name}")


class _Compiler:
    def __init__(self, flags: int):
        self.program: list[tuple] = []
        self.flags = flags

    def emit(self, *ins) -> int:
        if len(self.program) >= MAX_STATES:
            raise Unsupported("the pattern is too large to match safely; make it shorter or "
                              "use smaller repeat counts")
        self.program.append(ins)
        return len(self.program) - 1

    def patch(self, at: int, *ins) -> None:
        self.program[at] = ins

    def sequence(self, items, flags: int) -> None:
        for op, av in items:
            self.item(str(op), av, flags)

    def item(self, op: str, av, flags: int) -> None:
        icase = bool(flags & re.IGNORECASE)
        if op == "LITERAL":
            self.emit(_CHAR, _Set(chars=frozenset({av}), ignore_case=icase))
        elif op == "NOT_LITERAL":
            self.emit(_CHAR, _Set(chars=frozenset({av}), negate=True, ignore_case=icase))
        elif op == "ANY":
            self.emit(_CHAR, _Set(negate=True) if flags & re.DOTALL
                      else _Set(chars=frozenset({10}), negate=True))
        elif op == "IN":
            self.emit(_CHAR, _charset(av, icase))
        elif op == "BRANCH":
            self.branch(av[1], flags)
        elif op == "SUBPATTERN":
            _group, add, remove, sub = av
            self.sequence(sub, (flags | add) & ~remove)
        elif op in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            if op == "POSSESSIVE_REPEAT":
                raise Unsupported("possessive repeats")
            self.repeat(*av, flags)
        elif op == "AT":
            self.emit(_ASSERT, str(av), bool(flags & re.MULTILINE))
        elif op == "ATOMIC_GROUP":
            raise Unsupported("atomic groups (?>...)")
        elif op in ("GROUPREF", "GROUPREF_EXISTS"):
            raise Unsupported("backreferences like \\1")
        elif op in ("ASSERT", "ASSERT_NOT"):
            raise Unsupported("lookahead or lookbehind (?=...), (?!...), (?<=...)")
        else:
            raise Unsupported(op.lower())

    def branch(self, alternatives, flags: int) -> None:
        jumps = []
        for alt in alternatives[:-1]:
            split = self.emit(_SPLIT, 0, 0)
            self.sequence(alt, flags)
            jumps.append(self.emit(_JMP, 0))
            self.patch(split, _SPLIT, split + 1, len(self.program))
        self.sequence(alternatives[-1], flags)
        for at in jumps:
            self.patch(at, _JMP, len(self.program))

    def repeat(self, low: int, high, sub, flags: int) -> None:
        for _ in range(low):
            self.sequence(sub, flags)
        if high is _c.MAXREPEAT:
            split = self.emit(_SPLIT, 0, 0)
            self.sequence(sub, flags)
            self.emit(_JMP, split)
            self.patch(split, _SPLIT, split + 1, len(self.program))
            return
        ends = []
        for _ in range(high - low):
            ends.append(self.emit(_SPLIT, 0, 0))
            self.sequence(sub, flags)
        for at in ends:
            self.patch(at, _SPLIT, at + 1, len(self.program))


def _charset(items, icase: bool) -> _Set:
    chars, ranges, cats, negate = set(), [], [], False
    for op, av in items:
        op = str(op)
        if op == "NEGATE":
            negate = True
        elif op == "LITERAL":
            chars.add(av)
        elif op == "RANGE":
            ranges.append(tuple(av))
        elif op == "CATEGORY":
            cats.append(str(av))
            _category(str(av), "a")  # refuses an unknown category now, not at match time
        else:
            raise Unsupported(f"{op.lower()} in a character class")
    return _Set(frozenset(chars), tuple(ranges), tuple(cats), negate, icase)


def _is_word(text: str, i: int) -> bool:
    return 0 <= i < len(text) and (text[i].isalnum() or text[i] == "_")


def _holds(kind: str, multiline: bool, text: str, i: int) -> bool:
    n = len(text)
    if kind == "AT_BEGINNING_STRING" or (kind == "AT_BEGINNING" and not multiline):
        return i == 0
    if kind in ("AT_BEGINNING", "AT_BEGINNING_LINE"):
        return i == 0 or text[i - 1] == "\n"
    if kind == "AT_END_STRING":
        return i == n
    if kind == "AT_END" and not multiline:
        return i == n or (i == n - 1 and text[i] == "\n")
    if kind in ("AT_END", "AT_END_LINE"):
        return i == n or text[i] == "\n"
    if kind == "AT_BOUNDARY":
        return _is_word(text, i - 1) != _is_word(text, i)
    if kind == "AT_NON_BOUNDARY":
        return _is_word(text, i - 1) == _is_word(text, i)
    return False


class Pattern:
    """A compiled pattern; `fullmatch` is linear in the reply's length."""

    def __init__(self, text: str, program: list[tuple]):
        self.text = text
        self.program = program
        self.size = len(program)

    def __repr__(self) -> str:
        return f"Pattern({self.text!r}, {self.size} states)"

    def fullmatch(self, reply: str) -> bool:
        if len(reply) > MAX_REPLY:
            return False
        states = self._closure([0], reply, 0)
        for i, ch in enumerate(reply):
            moved = [pc + 1 for pc in states
                     if self.program[pc][0] == _CHAR and self.program[pc][1].test(ch)]
            if not moved:
                return False
            states = self._closure(moved, reply, i + 1)
        return any(self.program[pc][0] == _MATCH for pc in states)

    def _closure(self, starts: list[int], text: str, i: int) -> list[int]:
        """Every state reachable without consuming a character (no recursion)."""
        seen: set[int] = set()
        out: list[int] = []
        stack = list(reversed(starts))
        while stack:
            pc = stack.pop()
            if pc in seen:
                continue
            seen.add(pc)
            ins = self.program[pc]
            if ins[0] == _SPLIT:
                stack += (ins[2], ins[1])
            elif ins[0] == _JMP:
                stack.append(ins[1])
            elif ins[0] == _ASSERT:
                if _holds(ins[1], ins[2], text, i):
                    stack.append(pc + 1)
            else:
                out.append(pc)
        return out


def compile_pattern(text: str) -> Pattern:
    """Parse with `re`'s parser, then build the NFA; re.error or Unsupported on failure."""
    try:
        parsed = _p.parse(text)
    except RecursionError:
        raise Unsupported("the pattern is nested too deeply") from None
    compiler = _Compiler(parsed.state.flags)
    try:
        compiler.sequence(parsed, parsed.state.flags)
    except RecursionError:
        raise Unsupported("the pattern is nested too deeply") from None
    compiler.emit(_MATCH)
    return Pattern(text, compiler.program)


def has_nested_quantifier(text: str) -> bool:
    """True for a repeat of something that itself repeats a variable number of times
    (`(a+)+`, `(\\w+\\s?)*`): the shape that makes a backtracking engine explode."""
    try:
        parsed = _p.parse(text)
    except (re.error, RecursionError):
        return False

    def repeats(op: str) -> bool:
        return op in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")

    def variable(items) -> bool:
        for op, av in items:
            op = str(op)
            if (repeats(op) and av[0] != av[1]) or (repeats(op) and variable(av[2])):
                return True
            if (op == "SUBPATTERN" and variable(av[3])) or (
                    op == "BRANCH" and any(variable(alt) for alt in av[1])):
                return True
        return False

    def walk(items) -> bool:
        for op, av in items:
            op = str(op)
            if repeats(op):
                many = av[1] is _c.MAXREPEAT or av[1] > 16
                if (many and variable(av[2])) or walk(av[2]):
                    return True
            elif (op == "SUBPATTERN" and walk(av[3])) or (
                    op == "BRANCH" and any(walk(alt) for alt in av[1])):
                return True
        return False

    try:
        return walk(parsed)
    except RecursionError:
        return True
