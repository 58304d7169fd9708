"""An example third-party plugin, installed by the tests through its entry point."""

import re

from whopfunnel_plugin import hookimpl

_VAT = re.compile(r"[A-Z]{2}[0-9A-Z]{8,12}")


def vat_id(text: str) -> str:
    value = re.sub(r"[\s.-]", "", text).upper()
    if not _VAT.fullmatch(value):
        raise ValueError("not a VAT id like DE123456789")
    return value


@hookimpl
def register_validators(register):
    register("vat_id", vat_id)


@hookimpl
def on_invalid_response(conversation, reply, attempt, step):
    # A friendlier first nudge on the VAT question only; every other block keeps its ladder.
    if conversation.block == "vat" and attempt == 1:
        return "A VAT id looks like DE123456789. Could you check it?"
    return None
