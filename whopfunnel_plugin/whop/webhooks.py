"""Whop webhooks: signature verification and payload parsing into events.

Pure: the clock arrives as `now`, nothing here reads the network or the disk.

    WhopFunnelError
    └── WebhookError         a webhook delivery cannot be accepted (`status` is the HTTP answer)
        ├── SignatureError   401: missing headers, bad or stale signature
        ├── PayloadError     400: not UTF-8, not JSON, or a field of the wrong type
        └── PayloadTooLarge  413: body over the size limit

`verify(headers, body, secret, now=...)` -> delivery id; `parse(body)` -> `Envelope`;
`to_event(envelope, bot_user_id=..., route=...)` -> an event or `Ignored(reason)`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import WhopFunnelError
from ..events import MemberJoined, MembershipEnded, MessageReceived

MAX_BODY_BYTES = 1_048_576
MAX_ID_LENGTH = 191  # the store's webhook_id column; retries reuse the id, so it is the dedupe key

JOINED = ("membership.activated", "membership.went_valid")
ENDED = ("membership.deactivated", "membership.went_invalid")
MESSAGE = "chat.message.created"


class WebhookError(WhopFunnelError):
    """A webhook delivery cannot be accepted; `status` is the HTTP status to answer."""

    status = 400


class SignatureError(WebhookError):
    """Signature headers are missing, malformed, stale, or match no signature."""

    status = 401


class PayloadError(WebhookError):
    """The body is not UTF-8 JSON of the expected shape."""

    status = 400


class PayloadTooLarge(WebhookError):
    """The body is larger than the limit."""

    status = 413


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


# -- verification ------------------------------------------------------------------------


def verify(headers: Mapping[str, str], body: bytes, secret: str, *, now: float,
           tolerance: int = 300) -> str:
    """Check the delivery's signature and return its id, or raise `SignatureError`."""
    if not secret:
        raise SignatureError("webhook secret is empty; cannot verify signatures")
    found = {str(k).lower(): v for k, v in headers.items()}
    names = ("webhook-id", "webhook-timestamp", "webhook-signature")
    values = [found.get(name) for name in names]
    if not any(values) and found.get("x-whop-signature"):
        return _verify_legacy(found["x-whop-signature"], body, secret, now, tolerance)
    missing = [name for name, value in zip(names, values) if not value]
    if missing:
        raise SignatureError(f"missing {' and '.join(missing)} header{'s' if len(missing) > 1 else ''}")
    msg_id, timestamp, signatures = (_header_text(n, v) for n, v in zip(names, values))
    if len(msg_id) > MAX_ID_LENGTH:
        raise SignatureError(f"webhook-id is longer than {MAX_ID_LENGTH} characters")
    _check_age(_unix_seconds("webhook-timestamp", timestamp), now, tolerance)
    expected = _hmac(secret, f"{msg_id}.{timestamp}.".encode() + body)
    entries = (entry.partition(",") for entry in signatures.split())
    candidates = [sig for version, _, sig in entries if version == "v1"]  # other versions: ignored
    if not candidates:
        raise SignatureError("webhook-signature has no v1 entry")
    if any(hmac.compare_digest(expected, _decode(sig, base64.b64decode)) for sig in candidates):
        return msg_id
    raise SignatureError("no webhook signature matches")


def _verify_legacy(header: Any, body: bytes, secret: str, now: float, tolerance: int) -> str:
    pairs = [part.partition("=") for part in _header_text("x-whop-signature", header).split(",")]
    stamps = [value.strip() for key, _, value in pairs if key.strip() == "t"]
    candidates = [value.strip() for key, _, value in pairs if key.strip() == "v1"]
    if not stamps or not candidates:
        raise SignatureError("x-whop-signature must look like t=<unix seconds>,v1=<hex>")
    timestamp = stamps[0]
    _check_age(_unix_seconds("x-whop-signature t", timestamp), now, tolerance)
    expected = _hmac(secret, f"{timestamp}.".encode() + body)
    for sig in candidates:
        if hmac.compare_digest(expected, _decode(sig, bytes.fromhex)):
            return f"legacy:{timestamp}:{expected.hex()[:16]}"
    raise SignatureError("x-whop-signature does not match")


def _header_text(name: str, value: Any) -> str:
    # Whop's ids, timestamps and signatures are ASCII; anything else cannot be a real delivery.
    if not isinstance(value, str) or not value.isascii() or not value.isprintable():
        raise SignatureError(f"{name} header is not printable ASCII")
    return value


def _unix_seconds(name: str, value: str) -> int:
    if not (value.isdigit() and len(value) <= 12):
        raise SignatureError(f"{name} is not an integer number of unix seconds")
    return int(value)


def _check_age(timestamp: int, now: float, tolerance: int) -> None:
    age = now - timestamp
    if age > tolerance:
        raise SignatureError(f"webhook timestamp is {math.ceil(age)} s old; "
                             f"more than the {tolerance} s tolerance")
    if -age > tolerance:
        raise SignatureError(f"webhook timestamp is {math.ceil(-age)} s in the future; "
                             f"more than the {tolerance} s tolerance")


def _hmac(secret: str, content: bytes) -> bytes:
    # Whop's rule: the key is the secret's own UTF-8 bytes, `ws_` prefix included, never base64-decoded.
    return hmac.new(secret.encode("utf-8"), content, hashlib.sha256).digest()


def _decode(text: str, decoder: Callable[[str], bytes]) -> bytes:
    try:
        return decoder(text)
    except ValueError:  # binascii.Error is a ValueError
        return b""  # never equal to a 32-byte digest


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

    `route({"product_id", "company_id", "experience_id"})` (plus "user_id" and "channel_id"
    for a DM) names the tenant's experience
    id, or None when no funnel serves that product or company.
    """
    if not isinstance(envelope.data, dict):
        raise PayloadError(f"data must be an object, not {_kind(envelope.data)}")
    if envelope.type in JOINED or envelope.type in ENDED:
        return _membership(envelope, route)
    if envelope.type == MESSAGE:
        return _message(envelope, bot_user_id, route)
    return Ignored(f"unknown event type {_show(envelope.type)}")


def _membership(envelope: Envelope, route: Route) -> Event:
    # Two shapes: older nested {"user": {...}, "product": {...}, "company": {...}},
    # newer flat {"user_id", "product_id", "account": {...}}; legacy v5 is flat too.
    data = envelope.data
    user = _obj(data, "user", "data") or {}
    user_id = _str(data, "user_id", "data") or _str(user, "id", "data.user")
    if not user_id:
        raise PayloadError("missing data.user_id (or data.user.id)")
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
         "user_id": author, "channel_id": channel_id})
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
