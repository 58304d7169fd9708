"""Whop webhooks: signature verification and payload parsing into events.

Pure: the clock arrives as `now`, nothing here reads the network or the disk. The
errors (`WebhookError` and its 401/400/413 children) live in the package's tree.

`verify(headers, body, secret, now=...)` -> delivery id (from `signatures.py`);
`parse(body)` -> `Envelope`; `to_event(envelope, bot_user_id=..., route=...)` -> an event
or `Ignored(reason)`, reading the payloads as whop-sdk 2.x models them (see docs/whop.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import PayloadError, PayloadTooLarge, SignatureError, WebhookError
from ..events import MemberJoined, MembershipEnded, MessageReceived
from .signatures import MAX_ID_LENGTH, sign, verify

__all__ = ["ENDED", "JOINED", "MAX_BODY_BYTES", "MAX_ID_LENGTH", "MESSAGE", "Envelope", "Event", "Ignored",
           "PayloadError", "PayloadTooLarge", "SignatureError", "WebhookError", "parse", "sign",
           "to_event", "verify"]

MAX_BODY_BYTES = 1_048_576

JOINED = ("membership.activated", "membership.went_valid")
ENDED = ("membership.deactivated", "membership.went_invalid")
MESSAGE = "chat.message.created"


@dataclass(frozen=True)
class Ignored:
    """A valid delivery that produces no event (acknowledged with 2xx)."""

    reason: str


@dataclass(frozen=True)
class Envelope:
    """The outer part of a webhook body, for both the current and the legacy generation."""

    id: str | None
    type: str
    api_version: str | None
    company_id: str | None
    timestamp: str | int | float | None
    data: dict


# -- parsing ---------------------------------------------------------------------------------


def parse(body: bytes, *, max_bytes: int = MAX_BODY_BYTES) -> Envelope:
    """Decode a webhook body into an `Envelope`, or raise a `WebhookError`."""
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"body is {len(body)} bytes; more than the {max_bytes} byte limit")
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not UTF-8 (invalid byte at offset {exc.start})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"body is not valid JSON: {exc.msg} at line {exc.lineno} "
                           f"column {exc.colno}") from None
    except RecursionError:
        raise PayloadError("body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. a number longer than Python's int_max_str_digits
        reason = (str(exc) or "unreadable").splitlines()[0][:100]
        raise PayloadError(f"body is not valid JSON: {reason}") from None
    if not isinstance(doc, dict):
        raise PayloadError(f"body is a JSON {_kind(doc)}, not an object")
    kind = _str(doc, "type", "") or _str(doc, "action", "")
    if not kind:
        raise PayloadError("body has no type (or legacy action) field")
    timestamp = doc.get("timestamp")
    if timestamp is not None and (isinstance(timestamp, bool) or
                                  not isinstance(timestamp, (str, int, float))):
        raise PayloadError(f"timestamp must be a string or a number, not {_kind(timestamp)}")
    return Envelope(
        id=_str(doc, "id", ""),
        type=kind,
        api_version=_str(doc, "api_version", ""),
        company_id=_str(doc, "company_id", "") or _str(doc, "account_id", ""),
        timestamp=timestamp,
        data=_obj(doc, "data", "") or {},
    )


Event = MemberJoined | MembershipEnded | MessageReceived | Ignored
Route = Callable[[dict], "str | None"]


def to_event(envelope: Envelope, *, bot_user_id: str | None, route: Route) -> Event:
    """Turn an envelope into the event the engine understands, or `Ignored(reason)`.

    `route({"product_id", "company_id", "experience_id"})` (plus "user_id", "channel_id"
    and "message_id" for a DM) names the tenant's experience id, or None when no funnel
    serves that product or company.
    """
    if not isinstance(envelope.data, dict):
        raise PayloadError(f"data must be an object, not {_kind(envelope.data)}")
    if envelope.type in JOINED or envelope.type in ENDED:
        return _membership(envelope, route)
    if envelope.type == MESSAGE:
        return _message(envelope, bot_user_id, route)
    return Ignored(f"unknown event type {_show(envelope.type)}")


def _membership(envelope: Envelope, route: Route) -> Event:
    # whop-sdk 2.x `Membership` (types/membership.py): flat {"user_id" (nullable), "product_id",
    # "product": {...}, "account": {...}}; it names no user. Older deliveries nest
    # {"user": {...}, "product": {...}, "company": {...}}; legacy v5 is flat with user_id.
    data = envelope.data
    user = _obj(data, "user", "data") or {}
    user_id = _str(data, "user_id", "data") or _str(user, "id", "data.user")
    if not user_id:
        # Bought by another business, or unclaimed: nobody to DM. A 4xx would only make
        # Whop redeliver it for days.
        return Ignored("membership without a user (bought by a business, or unclaimed)")
    product_id = _str(data, "product_id", "data") or _id_of(data, "product")
    company_id = (_id_of(data, "account") or _id_of(data, "company")
                  or _str(data, "company_id", "data") or envelope.company_id)
    user_name = _str(user, "name", "data.user") or _str(user, "username", "data.user")
    experience_id = route({"product_id": product_id, "company_id": company_id, "experience_id": None})
    if not experience_id:
        return Ignored(f"no route for {_who(product_id, company_id)}")
    if envelope.type in JOINED:
        return MemberJoined(experience_id=experience_id, user_id=user_id, company_id=company_id,
                            product_id=product_id, user_name=user_name)
    return MembershipEnded(experience_id=experience_id, user_id=user_id, company_id=company_id,
                           product_id=product_id)


def _message(envelope: Envelope, bot_user_id: str | None, route: Route) -> Event:
    data = envelope.data
    channel = _obj(data, "channel", "data")
    if channel is None:
        raise PayloadError("missing data.channel")
    channel_type = _str(channel, "type", "data.channel")
    if channel_type != "direct_message":
        return Ignored(f"not a direct message channel ({_show(channel_type or 'no type')})")
    message = _obj(data, "message", "data")
    if message is None:
        raise PayloadError("missing data.message")
    kind = _str(message, "message_type", "data.message") or "regular"  # older payloads: none
    if kind != "regular":
        return Ignored(f"a {_show(kind)} message, not a member's reply")
    author = _id_of(message, "user", "data.message")
    if not author:
        raise PayloadError("missing data.message.user.id")
    if bot_user_id is not None and author == bot_user_id:
        return Ignored("the bot's own message")
    message_id = _str(message, "id", "data.message")
    if not message_id:
        raise PayloadError("missing data.message.id")
    text = _str(message, "content", "data.message") or ""
    channel_id = _str(channel, "id", "data.channel")
    experience_id = _str(channel, "experience_id", "data.channel") or route(
        {"product_id": None, "company_id": envelope.company_id, "experience_id": None,
         "user_id": author, "channel_id": channel_id, "message_id": message_id})
    if not experience_id:
        return Ignored(f"no route for {_who(None, envelope.company_id)}")
    return MessageReceived(experience_id=experience_id, user_id=author, message_id=message_id,
                           text=text, channel_id=channel_id)


# -- typed field access: wrong types become PayloadError naming the path ---------------------


def _str(obj: dict, key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise PayloadError(f"{_path(path, key)} must be a string, not {_kind(value)}")


def _obj(obj: dict, key: str, path: str) -> dict | None:
    value = obj.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise PayloadError(f"{_path(path, key)} must be an object, not {_kind(value)}")


def _id_of(obj: dict, key: str, path: str = "data") -> str | None:
    return _str(_obj(obj, key, path) or {}, "id", f"{path}.{key}")


def _path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    for types, name in ((bool, "boolean"), ((int, float), "number"), (str, "string"),
                        (list, "array"), (dict, "object")):
        if isinstance(value, types):
            return name
    return "null" if value is None else type(value).__name__


def _who(product_id: str | None, company_id: str | None) -> str:
    if product_id:
        return f"product {_show(product_id)}"
    if company_id:
        return f"company {_show(company_id)}"
    return "a delivery without product or company id"


def _show(text: str) -> str:
    """Payload text made safe for a one-line message."""
    text = text if len(text) <= 80 else text[:77] + "..."
    return text if text.isprintable() else repr(text)
