"""Webhook signatures: Standard Webhooks with Whop's key rule, and the legacy scheme.

Whop's key rule (whop-sdk 2.6.0 `lib/verify_webhook.py`): the HMAC key is the secret's
own UTF-8 bytes, `ws_` prefix included, never base64-decoded as the Standard Webhooks
default would. `sign` is the counterpart the fake and the tests deliver with. Pure: the
clock arrives as `now`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import SignatureError

MAX_ID_LENGTH = 191  # the store's webhook_id column; retries reuse the id, so it is the dedupe key


def sign(body: bytes, secret: str, msg_id: str, timestamp: int) -> dict[str, str]:
    """Standard Webhooks headers for `body`, signed as Whop signs (the raw secret bytes)."""
    digest = _hmac(secret, f"{msg_id}.{timestamp}.".encode() + body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": "v1," + base64.b64encode(digest).decode("ascii")}


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
