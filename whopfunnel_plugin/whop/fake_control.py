"""`/_fake/...`: drive the fake Whop API over HTTP (what `whopfunnel fake-whop` prints).

No API key needed: this is loopback tooling, never part of the real API. Each member
action builds the webhook Whop would send and, when the fake has a `deliver` (a
`WebhookSender`), signs it the way Whop does and POSTs it to the webhook URL:

    POST /_fake/join    {"user_id", "product_id", "account_id"?, "shape"?, "name"?}
    POST /_fake/leave   {"user_id", "product_id", "account_id"?, "shape"?}
    POST /_fake/say     {"user_id", "text", "username"?}
    POST /_fake/system  {"user_id", "text", "message_type"?}      (system or automated)
    GET  /_fake/sent            the bot's DMs, each with its channel and Idempotency-Key
    GET  /_fake/notifications   the notifications posted
    GET  /_fake/requests        every API request the fake saw, with its Idempotency-Key
    POST /_fake/faults  {"fail_next": {"n", "status"?, "headers"?}, "lose_next": {"n"?,
                         "status"?, "drop"?}, "slow": {"seconds", "n"?},
                         "limit_rate": {"requests", "per"?, "headers"?} or null, "clear": true}

`user_id` may be null in join/leave: a membership bought by a business, or unclaimed.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from ..clock import SystemClock
from .fake_shapes import new_id
from .signatures import sign


class WebhookSender:
    """Signs a webhook as Whop does (raw secret bytes) and POSTs it to `url`."""

    def __init__(self, url: str, secret: str, *, transport: httpx.BaseTransport | None = None,
                 clock=None, timeout: float = 10.0):
        self.url = url
        self._secret = secret
        self._clock = clock or SystemClock()
        self._http = httpx.Client(transport=transport, timeout=timeout)

    def __repr__(self) -> str:
        return f"WebhookSender(url={self.url!r})"

    def __call__(self, envelope: dict) -> dict:
        body = json.dumps(envelope).encode()
        headers = sign(body, self._secret, envelope.get("id") or new_id("msg"),
                       int(self._clock.now().timestamp()))
        try:
            answer = self._http.post(self.url, content=body,
                                     headers={**headers, "Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            return {"status": None, "error": f"{type(exc).__name__}: {exc}"}
        try:
            return {"status": answer.status_code, "answer": answer.json()}
        except ValueError:
            return {"status": answer.status_code, "answer": answer.text[:500]}

    def close(self) -> None:
        self._http.close()


class _Bad(Exception):
    pass


def control(fake, method: str, path: str, environ: dict) -> tuple[int, Any, dict]:
    """Answer one `/_fake/...` request: (status, JSON answer, headers)."""
    name = path[len("/_fake/"):].strip("/")
    reads = {"sent": fake.sent_messages, "notifications": lambda: fake.notifications,
             "requests": lambda: [r.as_dict() for r in fake.seen_requests()]}
    actions = {"join": _join, "leave": _leave, "say": _say, "system": _system, "faults": _faults}
    if name in reads and method == "GET":
        return 200, {"data": reads[name]()}, {}
    if name not in actions or method != "POST":
        allowed = "GET" if name in reads else "POST"
        if name in reads or name in actions:
            return 405, {"error": {"message": f"use {allowed} on {path}"}}, {"Allow": allowed}
        return 404, {"error": {"message": f"no control route {path}; see whopfunnel fake-whop --help"}}, {}
    try:
        result = actions[name](fake, _body(environ))
    except (_Bad, ValueError) as exc:
        return 400, {"error": {"message": str(exc)}}, {}
    return 200, result, {}


def _deliver(fake, envelope: dict) -> dict:
    return {"webhook": envelope, "delivery": fake.deliver(envelope) if fake.deliver else None}


def _join(fake, body: dict) -> dict:
    return _deliver(fake, fake.membership_activated(
        _text(body, "user_id", nullable=True), _text(body, "product_id"), _text(body, "account_id", False),
        shape=_text(body, "shape", False) or "current", name=_text(body, "name", False)))


def _leave(fake, body: dict) -> dict:
    return _deliver(fake, fake.membership_deactivated(
        _text(body, "user_id", nullable=True), _text(body, "product_id"), _text(body, "account_id", False),
        shape=_text(body, "shape", False) or "current"))


def _say(fake, body: dict) -> dict:
    return _deliver(fake, fake.member_says(_text(body, "user_id"), _text(body, "text"),
                                           username=_text(body, "username", False)))


def _system(fake, body: dict) -> dict:
    kind = _text(body, "message_type", False) or "system"
    return _deliver(fake, fake.system_message(_text(body, "user_id"), _text(body, "text"), message_type=kind))


def _faults(fake, body: dict) -> dict:
    unknown = sorted(set(body) - {"fail_next", "lose_next", "slow", "limit_rate", "clear"})
    if unknown:
        raise _Bad(f"unknown fault mode {', '.join(unknown)}")
    try:
        if body.get("clear"):
            fake.clear_faults()
        if "fail_next" in body:
            fake.fail_next(**_mapping(body, "fail_next"))
        if "lose_next" in body:
            fake.lose_next(**_mapping(body, "lose_next"))
        if "slow" in body:
            fake.slow(**_mapping(body, "slow"))
        if "limit_rate" in body:
            if body["limit_rate"] is None:
                fake.limit_rate(None)
            else:
                options = _mapping(body, "limit_rate")
                fake.limit_rate(**{**options, "headers": tuple(options.get("headers", ("retry-after",
                                                                                     "x-ratelimit-reset")))})
    except TypeError as exc:  # a misspelled or missing option of one mode
        raise _Bad(str(exc).replace("FaultModes.", "")) from None
    return {"status": "ok"}


def _body(environ: dict) -> dict:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length > 0 else b"{}"
        body = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise _Bad("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _Bad("the body must be a JSON object")
    return body


def _text(body: dict, key: str, required: bool = True, *, nullable: bool = False) -> str | None:
    if key not in body:
        if required:
            raise _Bad(f"{key} is required" + (" (null: a membership without a user)" if nullable else ""))
        return None
    value = body[key]
    if value is None and (nullable or not required):
        return None
    if not isinstance(value, str) or not value:
        raise _Bad(f"{key} must be a non-empty string" + (" or null" if nullable else ""))
    return value


def _mapping(body: dict, key: str) -> dict:
    value = body[key]
    if not isinstance(value, dict):
        raise _Bad(f"{key} must be an object of options")
    return value
