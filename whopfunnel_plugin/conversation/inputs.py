"""`input:` validators: text in, the value to save out, `InvalidReply` when not acceptable.

A validator raises `InvalidReply("message")` to tell the member what was wrong in its
own words; a plain `ValueError` (or any other exception) is a "no" answered with the
validator's `invalid_message` attribute, if it has one, else a generic message. Each
built-in has its own message, and a block's `invalid_message:` wins over all of them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from functools import lru_cache

from .saferegex import Pattern, compile_pattern, has_nested_quantifier

Validator = Callable[[str], str]
MAX_INPUT = 2000
GENERIC_INVALID = "That doesn't look like a valid answer. Please try again."

_EMAIL = re.compile(r"[^@\s<>(),;:\"\[\]]+@[^@\s<>(),;:\"\[\]]+\.[^@\s<>(),;:\"\[\].]{2,}")
_NUMBER = re.compile(r"[-+]?(\d+|\d{1,3}(,\d{3})+)(\.\d+)?")


class InvalidReply(ValueError):
    """Raised by a validator: the reply is not acceptable; the message is for the member."""


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).strip()
    if not text:
        raise InvalidReply("That reply is empty. Please type your answer.")
    if len(text) > MAX_INPUT:
        raise InvalidReply(f"That reply is too long (over {MAX_INPUT} characters).")
    return text


def ascii_digits(text: str) -> str:
    """Decimal digits of any script (`١٢٣`, `१२३`) as ASCII (`123`)."""
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)


def email(text: str) -> str:
    value = _clean(text).strip("<>")
    if not _EMAIL.fullmatch(value):
        raise InvalidReply(email.invalid_message)
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


def number(text: str) -> str:
    value = ascii_digits(_clean(text).replace(" ", ""))
    if not _NUMBER.fullmatch(value):
        raise InvalidReply(number.invalid_message)
    return value.replace(",", "").lstrip("+")


def text(text: str) -> str:
    return _clean(text)


email.invalid_message = "That doesn't look like an email address. Please check it and send it again."
number.invalid_message = "That doesn't look like a number. Please reply with digits, like 42."
text.invalid_message = "Please type your answer as a message."

REGEX_INVALID = "That isn't in the format I was expecting. Please check it and try again."


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> Pattern | re.Pattern | None:
    """The linear-time matcher; for a pattern it cannot run (only in a funnel snapshot
    stored before validation refused them), `re` on short replies, unless its shape
    could backtrack for ever: then nothing matches (None)."""
    try:
        return compile_pattern(pattern)
    except ValueError:
        return None if has_nested_quantifier(pattern) else re.compile(pattern)


def regex(pattern: str) -> Validator:
    def check(reply: str) -> str:
        value = _clean(reply)
        compiled = _compiled(pattern)
        if compiled is None or (isinstance(compiled, re.Pattern) and len(value) > 64):
            raise InvalidReply(REGEX_INVALID)  # backtracking `re`: keep the reply short
        if not compiled.fullmatch(value):
            raise InvalidReply(REGEX_INVALID)
        return value

    check.invalid_message = REGEX_INVALID
    return check


BUILTIN: Mapping[str, Validator] = {"email": email, "number": number, "text": text}


def resolve(name: str, extra: Mapping[str, Validator] | None = None) -> Validator:
    """The validator an `input:` value names; KeyError for an unknown name."""
    if name.startswith("regex:"):
        return regex(name[len("regex:"):])
    if extra and name in extra:
        return extra[name]
    return BUILTIN[name]


def validate(validator: Validator, reply: str) -> tuple[str | None, str]:
    """(value, "") for an accepted reply, (None, message for the member) otherwise.
    A validator that fails in any way is a "no", never a crash."""
    try:
        value = validator(reply)
    except InvalidReply as exc:
        return None, str(exc).strip() or default_message(validator)
    except Exception:  # noqa: BLE001 - a plugin's validator failing is a "no"
        return None, default_message(validator)
    if value is None:
        return None, default_message(validator)
    return str(value), ""


def default_message(validator: Validator) -> str:
    message = getattr(validator, "invalid_message", None)
    return message if isinstance(message, str) and message.strip() else GENERIC_INVALID
