"""Built-in `input:` validators: text in, the value to save out, ValueError when invalid."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from functools import lru_cache

Validator = Callable[[str], str]
MAX_INPUT = 2000

_EMAIL = re.compile(r"[^@\s<>(),;:\"\[\]]+@[^@\s<>(),;:\"\[\]]+\.[^@\s<>(),;:\"\[\].]{2,}")
_NUMBER = re.compile(r"[-+]?(\d+|\d{1,3}(,\d{3})+)(\.\d+)?")


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).strip()
    if not text:
        raise ValueError("the reply is empty")
    if len(text) > MAX_INPUT:
        raise ValueError(f"the reply is longer than {MAX_INPUT} characters")
    return text


def email(text: str) -> str:
    value = _clean(text).strip("<>")
    if not _EMAIL.fullmatch(value):
        raise ValueError("that does not look like an email address")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


def number(text: str) -> str:
    value = _clean(text).replace(" ", "")
    if not _NUMBER.fullmatch(value):
        raise ValueError("that is not a number")
    return value.replace(",", "").lstrip("+")


def text(text: str) -> str:
    return _clean(text)


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def regex(pattern: str) -> Validator:
    def check(reply: str) -> str:
        value = _clean(reply)
        if not _compiled(pattern).fullmatch(value):
            raise ValueError("that is not in the expected format")
        return value

    return check


BUILTIN: Mapping[str, Validator] = {"email": email, "number": number, "text": text}


def resolve(name: str, extra: Mapping[str, Validator] | None = None) -> Validator:
    """The validator an `input:` value names; KeyError for an unknown name."""
    if name.startswith("regex:"):
        return regex(name[len("regex:"):])
    if extra and name in extra:
        return extra[name]
    return BUILTIN[name]
