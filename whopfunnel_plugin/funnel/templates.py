"""`{name}` templates: parsing for the validator, rendering for the engine.

Only plain names are allowed. Attribute access, indexing, conversions and format
specs are refused at validation time, and rendering never calls `str.format`, so a
template can never reach into an object and a member's reply (inserted as a value)
is never itself treated as a template.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

BUILTIN_VARS = frozenset({"user_name", "user_id", "experience_id", "options"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_formatter = string.Formatter()


@dataclass(frozen=True)
class Field:
    name: str
    offset: int  # character offset of the `{` in the template


class TemplateSyntaxError(ValueError):
    def __init__(self, message: str, offset: int = 0):
        super().__init__(message)
        self.offset = offset


def fields(template: str) -> Iterator[Field]:
    """Yield each `{name}` field; raise TemplateSyntaxError for anything else."""
    try:
        parsed = list(_formatter.parse(template))
    except ValueError as exc:  # "Single '}' encountered", "unmatched '{'"...
        raise TemplateSyntaxError(f"bad template: {exc} (write {{{{ or }}}} for a literal brace)") from None
    offset = 0
    for literal, name, spec, conversion in parsed:
        offset += len(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:
            continue
        raw = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if not name:
            raise TemplateSyntaxError("empty template field {}; name a variable like {user_name}", offset)
        if not _NAME.match(name):
            if "." in name or "[" in name:
                raise TemplateSyntaxError(
                    f"template field {raw} uses attribute access or indexing; "
                    "only plain names like {user_name} are allowed",
                    offset,
                )
            raise TemplateSyntaxError(f"template field {raw} is not a plain variable name", offset)
        if conversion or spec:
            raise TemplateSyntaxError(
                f"template field {raw} has a conversion or format spec; write {{{name}}}", offset
            )
        yield Field(name, offset)
        offset += len(raw)


def problems_in(template: str) -> tuple[list[str], list[str]]:
    """(the plain names used, a message for every field that is not a plain name): all of
    them, so one run of the validator reports `{x.__class__}` and `{vars[0]}` together."""
    try:
        parsed = list(_formatter.parse(template))
    except ValueError:
        try:
            list(fields(template))
        except TemplateSyntaxError as exc:
            return [], [str(exc)]
        return [], []
    names: list[str] = []
    errors: list[str] = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        try:
            names += [f.name for f in fields("{" + name + (f"!{conversion}" if conversion else "")
                                             + (f":{spec}" if spec else "") + "}")]
        except TemplateSyntaxError as exc:
            errors.append(str(exc))
    return names, errors


def render(template: str, values: Mapping[str, object]) -> str:
    """Fill `{name}` fields from `values`; a name with no value renders as empty text.

    Templates are validated before they get here; a template that still fails to
    parse (a funnel loaded without validation) is sent as written rather than lost.
    """
    try:
        parsed = list(_formatter.parse(template))
    except ValueError:
        return template
    out: list[str] = []
    for literal, name, spec, conversion in parsed:
        out.append(literal)
        if name is None:
            continue
        if _NAME.match(name) and not spec and not conversion:
            value = values.get(name)
            out.append("" if value is None else str(value))
        else:
            out.append("{" + name + "}")
    return "".join(out)
