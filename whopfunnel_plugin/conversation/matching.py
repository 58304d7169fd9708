"""Match a member's free-text reply to one of a question block's options.

Rules, in priority order (the first rule that names exactly one option wins):

1. text:    the reply equals an option text or synonym after `normalize_text`
            (also `1. Trading & Investing`, `yes please`, `I pick trading`);
2. number:  `2`, `#2`, `(2)`, `option 2`, `I choose 2`, `2️⃣`, `２`, `2 please`;
3. ordinal: `second`, `2nd`, `the second one`, `two`, `option two`;
4. fuzzy:   a small edit distance from the options' texts/synonyms.

Two or more options named equally is "ambiguous"; everything else is "invalid".
Pure functions, stdlib only, and no input string can make them raise.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Protocol

from .fuzzy import distance as _distance
from .fuzzy import threshold as _threshold

__all__ = ["Match", "OptionLike", "label_key", "match_reply", "normalize_text"]

# A pasted essay is never an option: refuse it before normalising it (unless options are huge).
MAX_REPLY = 20_000
# Longer "number" replies are sentences, not choices ("I have 2 kids and 3 dogs...").
_MAX_NUMBER_TOKENS = 12


class OptionLike(Protocol):
    text: str
    synonyms: tuple[str, ...]


@dataclass(frozen=True)
class Match:
    kind: Literal["valid", "invalid", "ambiguous"]
    index: int | None = None  # 0-based option index when kind == "valid"
    candidates: tuple[int, ...] = ()  # 0-based indices when kind == "ambiguous" (sorted)
    how: str = ""  # "number" | "text" | "ordinal" | "fuzzy" | ""


INVALID = Match("invalid")


# --- normalisation -----------------------------------------------------------------------

# Invisible characters that are not Cf/Me: variation selectors (emoji VS16 in `2️⃣`),
# Mongolian selectors, the combining grapheme joiner and Hangul fillers (used for "blank" text).
_INVISIBLE_RANGES = ((0xFE00, 0xFE0F), (0xE0100, 0xE01EF), (0x180B, 0x180F))
_INVISIBLE = frozenset("\u034f\u115f\u1160\u3164\uffa0")


# Keycaps ("1️⃣" is 1, VS16, U+20E3) and other enclosing marks end the digit they decorate,
# so "1️⃣2️⃣" reads as "1 2", not 12; the keycap ten is a number of its own.
_SPECIAL = {0x20E3: " ", 0x1F51F: " 10 "}


def _invisible(ch: str) -> bool:
    # Cf: zero-width (non-)joiners, bidi marks, BOM, soft hyphen, tag characters.
    if unicodedata.category(ch) == "Cf" or ch in _INVISIBLE:
        return True
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _INVISIBLE_RANGES)


class _CharTable(dict):
    """A `str.translate` table filled on first use; per-character work made cheap."""

    def __init__(self, fold: bool) -> None:
        super().__init__()
        self.fold = fold  # False: only drop invisibles; True: also non-letters -> space

    def __missing__(self, cp: int) -> str:
        ch = chr(cp)
        if cp in _SPECIAL or unicodedata.category(ch) == "Me":
            out = _SPECIAL.get(cp, " ")
        elif _invisible(ch):
            out = ""
        elif not self.fold or unicodedata.category(ch)[0] in "LMN":
            out = ch
        else:
            out = " "
        if len(self) < 65536:  # bounded: a reply can hold any code point
            self[cp] = out
        return out


_DROP = _CharTable(fold=False)
_FOLD = _CharTable(fold=True)


def normalize_text(text: str) -> str:
    """NFKC, casefold, drop zero-width/variation selectors, punctuation+symbols -> space,
    collapse spaces, strip. Letters (any script, with accents), marks and digits are kept."""
    # Drop invisibles *before* NFKC so characters they separated can still compose
    # (e + ZWJ + U+0301 -> é); otherwise a second call could change the result.
    text = unicodedata.normalize("NFKC", text.translate(_DROP))
    text = unicodedata.normalize("NFKC", text.casefold())
    return " ".join(text.translate(_FOLD).split())


# "Trading & Investing", "Trading and Investing", "trading + investing": one key.
_JOINERS = frozenset("and n plus und et".split())


def _drop_joiners(text: str) -> str:
    tokens = text.split(" ")
    if len(tokens) < 3:
        return text
    kept = [tokens[0], *(t for t in tokens[1:-1] if t not in _JOINERS), tokens[-1]]
    return " ".join(kept)


@lru_cache(maxsize=2048)
def label_key(label: str) -> str:
    """What a label (or a reply) is compared as: `normalize_text`, then the joiners between
    words (`and`, `&`, `+`, `n`) dropped. Option labels repeat on every reply: cached."""
    return _drop_joiners(normalize_text(label))


# --- numbers and ordinals ----------------------------------------------------------------

_WORDS = ("one two three four five six seven eight nine ten eleven twelve").split()
_ORDINALS = ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh "
             "twelfth").split()
_NUMBER_WORDS = {w: i for i, w in enumerate(_WORDS, start=1)}
_ORDINAL_WORDS = {w: i for i, w in enumerate(_ORDINALS, start=1)}

# Lead phrases as normalised tokens ("I'll" -> "i ll"); longest first so they win.
_LEADS = sorted(
    (tuple(p.split()) for p in (
        "i choose", "i chose", "i pick", "i select", "i want", "i take", "i vote", "i vote for",
        "i say", "i d like", "i would like", "i ll take", "i ll go with", "i ll go for",
        "i ll pick", "i ll choose", "i go with", "i m going with", "going with", "go with",
        "let s go with", "my answer is", "my choice is", "my pick is", "answer", "pick",
        "choose", "select",
    )),
    key=len, reverse=True,
)
_POLITE = frozenset("please pls plz thanks thx ty".split())
_NOUNS = frozenset("option choice number answer opt".split())
_DIGIT_NOUNS = frozenset("no nr num".split())  # only before digits: "no one" is not option 1
_AFTER_ORDINAL = frozenset("one option choice".split())  # "the second one"
_SEPARATORS = frozenset("or and".split())


def _strip_frills(tokens: list[str]) -> list[str]:
    """Remove a lead phrase ("i choose") and trailing politeness ("please", "thank you")."""
    for lead in _LEADS:
        if tuple(tokens[: len(lead)]) == lead and len(tokens) > len(lead):
            tokens = tokens[len(lead):]
            break
    while len(tokens) > 1 and tokens[-1] in _POLITE:
        tokens = tokens[:-1]
    if len(tokens) > 2 and tokens[-2:] == ["thank", "you"]:
        tokens = tokens[:-2]
    return tokens


def _number_value(token: str) -> tuple[int, str] | None:
    """(value, kind) for `2` (digits), `two` (word), `2nd`/`second` (ordinal); else None."""
    if token.isdecimal():
        # Guard int(): huge digit strings raise ValueError (int max str digits).
        return (int(token) if len(token) <= 6 else 0), "digits"
    if token[-2:] in ("st", "nd", "rd", "th") and token[:-2].isdecimal() and len(token) <= 8:
        return int(token[:-2]), "ordinal"
    if token in _NUMBER_WORDS:
        return _NUMBER_WORDS[token], "word"
    if token in _ORDINAL_WORDS:
        return _ORDINAL_WORDS[token], "ordinal"
    return None


def _parse_numbers(tokens: list[str]) -> list[tuple[int, str]] | None:
    """Parse `[the] [option] N [one] ((or|and) ...)*`; None unless the whole reply fits.

    A plain left-to-right scan (no regex backtracking), so any length is cheap.
    """
    found: list[tuple[int, str]] = []
    i, n = 0, len(tokens)
    while i < n:
        if found and tokens[i] in _SEPARATORS:
            i += 1
        if i < n and tokens[i] == "the":
            i += 1
        digits_only = False
        if i < n and (tokens[i] in _NOUNS or tokens[i] in _DIGIT_NOUNS):
            digits_only = tokens[i] in _DIGIT_NOUNS
            i += 1
        value = _number_value(tokens[i]) if i < n else None
        if value is None or (digits_only and value[1] != "digits"):
            return None
        found.append(value)
        i += 1
        if i < n and value[1] == "ordinal" and tokens[i] in _AFTER_ORDINAL:
            i += 1
    return found or None


# --- matching ----------------------------------------------------------------------------

def _labels(options: Sequence[OptionLike]) -> dict[str, set[int]]:
    """Normalised option text/synonym -> the option indices that use it."""
    keys: dict[str, set[int]] = {}
    for index, option in enumerate(options):
        for label in (option.text, *(getattr(option, "synonyms", None) or ())):
            if isinstance(label, str) and (key := label_key(label)):
                keys.setdefault(key, set()).add(index)
    return keys


def _result(indices: Iterable[int], how: str) -> Match | None:
    found = tuple(sorted(set(indices)))
    if not found:
        return None
    if len(found) == 1:
        return Match("valid", index=found[0], how=how)
    return Match("ambiguous", candidates=found, how=how)


def _by_text(
    reply: str, tokens: list[str], labels: dict[str, set[int]], count: int
) -> Match | None:
    if reply in labels:
        return _result(labels[reply], "text")
    # The whole rendered line, "1. Trading & Investing": number and text should agree.
    if len(tokens) > 1 and tokens[0].isdecimal() and (rest := " ".join(tokens[1:])) in labels:
        number = int(tokens[0]) if len(tokens[0]) <= 6 else 0
        named = {number - 1} if 1 <= number <= count else set()
        return _result(labels[rest] | named, "text")
    # "yes please", "I pick trading".
    bare = " ".join(_strip_frills(tokens))
    if bare != reply and bare in labels:
        return _result(labels[bare], "text")
    return None


def _by_number(tokens: list[str], count: int) -> Match | None:
    if len(tokens) > _MAX_NUMBER_TOKENS:
        return None
    found = _parse_numbers(_strip_frills(tokens))
    if not found:
        return None
    how = "number" if any(kind == "digits" for _, kind in found) else "ordinal"
    values = {value for value, _ in found}
    in_range = [v - 1 for v in values if 1 <= v <= count]
    if len(values) == 1 or len(in_range) >= 2:
        return _result(in_range, how)
    return None  # "1 or 7" of 2 options: one real choice plus one that does not exist


def _by_fuzzy(reply: str, labels: dict[str, set[int]]) -> Match | None:
    best: dict[int, int] = {}
    for key, indices in labels.items():
        limit = _threshold(len(key))
        if limit == 0 or abs(len(key) - len(reply)) > limit:
            continue  # cheap skip: keeps a 10,000-character reply O(labels)
        distance = _distance(reply, key, limit)
        if distance <= limit:
            for index in indices:
                best[index] = min(distance, best.get(index, distance))
    if not best:
        return None
    closest = min(best.values())
    return _result((i for i, d in best.items() if d == closest), "fuzzy")


@lru_cache(maxsize=1024)
def _cached_labels(options: tuple) -> tuple[dict[str, set[int]], int]:
    labels = _labels(options)
    return labels, max((len(key) for key in labels), default=0)


def _labels_of(options: Sequence[OptionLike]) -> tuple[dict[str, set[int]], int]:
    """Labels and the longest one; a funnel's (immutable) options are normalised once."""
    if isinstance(options, tuple):
        try:
            return _cached_labels(options)
        except TypeError:  # unhashable option objects: no caching
            pass
    labels = _labels(options)
    return labels, max((len(key) for key in labels), default=0)


def match_reply(reply: str, options: Sequence[OptionLike]) -> Match:
    """Decide which option (0-based) a reply names; never raises for a str reply."""
    if not isinstance(reply, str) or not options:
        return INVALID
    labels, longest = _labels_of(options)
    if len(reply) > max(MAX_REPLY, 2 * longest + 64):
        return INVALID
    text = _drop_joiners(normalize_text(reply))
    if not text:
        return INVALID
    tokens = text.split(" ")
    return (
        _by_text(text, tokens, labels, len(options))
        or _by_number(tokens, len(options))
        or _by_fuzzy(text, labels)
        or INVALID
    )
