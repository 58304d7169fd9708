"""An offline fake of the Whop API endpoints whopfunnel uses, as a WSGI app.

Serves `whopfunnel serve --demo`, `whopfunnel fake-whop` and the end-to-end tests over
real HTTP (waitress on loopback). It speaks what whop-sdk 2.6.0 speaks: the same paths
(`/api/v1` an optional prefix), the request fields the SDK sends (unknown ones are
refused, so a client regression shows), `Api-Version-Date` (an unknown date is a 400, as
on the real API), and answers and webhooks in the SDK's models (`fake_shapes.py`).
Helpers make the member side of a conversation (`member_says`, `system_message`,
`membership_activated`, ...), fault modes make Whop misbehave (`fake_faults.py`), and
`seen_requests()` lists every request with its Idempotency-Key. One lock around state.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote

from ..clock import SystemClock
from . import fake_shapes as shapes
from .fake_api import FIELDS, FakeAPI, Reply, read_json
from .fake_control import control
from .fake_faults import DROP, FaultModes, SeenRequest
from .fake_server import serve_in_thread
from .signatures import sign

__all__ = ["API_VERSIONS", "FakeWhop", "serve_in_thread"]

PREFIX = "/api/v1"
API_VERSIONS = ("2026-08-21", "2026-10-15-1")  # Api-Version-Dates the fake knows (whop-sdk 2.x)
SHAPES = ("current", "nested", "v5")


class FakeWhop(FaultModes, FakeAPI):
    """The fake API; call it as a WSGI app. `owners` maps account id -> owner user id (or dict).

    `deliver(envelope)`, when given, signs and posts a webhook (see `fake_control.py`).
    """

    def __init__(self, api_key: str = "fake_whop_key", *, owners: dict[str, Any] | None = None,
                 bot_user_id: str = "user_bot", company_id: str = "biz_demo", clock=None,
                 sleep: Callable[[float], Any] = time.sleep, api_versions=API_VERSIONS,
                 deliver: Callable[[dict], dict] | None = None):
        super().__init__()
        self.api_key = api_key
        self.bot_user = shapes.user(bot_user_id, "funnel-bot", "Funnel Bot")
        self.company_id = company_id
        self.owners = dict(owners or {company_id: "user_owner"})
        self.clock = clock or SystemClock()
        self.api_versions = frozenset(api_versions)
        self.deliver = deliver
        self._sleep = sleep
        self._lock = threading.RLock()
        self._seen: list[SeenRequest] = []
        self._init_state()

    def __repr__(self) -> str:
        return f"FakeWhop(company_id={self.company_id!r}, channels={len(self._channels)})"

    # -- what a test or a checker reads ------------------------------------------------------

    def sent_messages(self, channel_id: str | None = None) -> list[dict]:
        """Messages posted through the API (by the bot), oldest first: each the Message as
        answered, plus `channel_id` and the `idempotency_key` it was created with."""
        with self._lock:
            return [_view(r) for r in self._sent if channel_id is None or r["channel_id"] == channel_id]

    def messages(self, channel_id: str) -> list[dict]:
        """Every message in a channel, from either side, oldest first."""
        with self._lock:
            return [_view(r) for r in self._messages.get(channel_id, [])]

    @property
    def notifications(self) -> list[dict]:
        with self._lock:
            return [dict(n) for n in self._notifications]

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request, failed or not, oldest first."""
        with self._lock:
            return [(r.method, r.path) for r in self._seen]

    def seen_requests(self) -> list[SeenRequest]:
        """Every API request with its Idempotency-Key and what became of it, oldest first."""
        with self._lock:
            return list(self._seen)

    def clear_faults(self) -> None:
        """Forget every fault mode: the API is healthy again."""
        self.clear()

    # -- the member's side -------------------------------------------------------------------

    def channel_for(self, user_id: str, company_id: str | None = None) -> str:
        """The DM channel id with `user_id`, opened if needed."""
        with self._lock:
            return self._open_channel([user_id], company_id or self.company_id)["id"]

    def adopt_channel(self, channel_id: str, user_id: str, company_id: str | None = None) -> None:
        """Make `channel_id` the DM channel with `user_id`, as if this fake had opened it
        (a conversation kept in a database outlives the fake that opened its channel)."""
        with self._lock:
            key = frozenset([user_id])
            if channel_id in self._channels or key in self._channel_by_users:
                return
            self._channels[channel_id] = {"id": channel_id, "created_at": self.clock.now(),
                                          "last_message_at": None, "name": user_id,
                                          "account_id": company_id or self.company_id}
            self._channel_by_users[key] = channel_id
            self._messages[channel_id] = []

    def member_says(self, user_id: str, text: str, *, company_id: str | None = None,
                    username: str | None = None) -> dict:
        """The member DMs the bot; returns the `chat.message.created` webhook."""
        return self._chat(user_id, text, company_id, shapes.user(user_id, username), "regular")

    def system_message(self, user_id: str, text: str, *, message_type: str = "system",
                       company_id: str | None = None) -> dict:
        """A `system` (or `automated`) message in the member's DM; it is no reply of theirs."""
        return self._chat(user_id, text, company_id, shapes.user(user_id), message_type)

    def membership_activated(self, user_id: str | None, product_id: str, company_id: str | None = None,
                             *, shape: str = "current", name: str | None = None) -> dict:
        """A join. `shape`: current (whop-sdk 2.x; names no user), nested (older; `name`), v5."""
        return self._membership("membership.activated", "active", user_id, product_id, company_id,
                                shape, name)

    def membership_deactivated(self, user_id: str | None, product_id: str,
                               company_id: str | None = None, *, shape: str = "current") -> dict:
        return self._membership("membership.deactivated", "canceled", user_id, product_id, company_id,
                                shape, None)

    sign = staticmethod(sign)

    # -- WSGI --------------------------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        if path.startswith(PREFIX + "/"):
            path = path[len(PREFIX):]
        if path.startswith("/_fake/"):
            return _answer(start_response, *control(self, method, path, environ))
        if delay := self.take_delay():
            self._sleep(delay)
        key, version = environ.get("HTTP_IDEMPOTENCY_KEY"), environ.get("HTTP_API_VERSION_DATE")
        lost, headers, outcome = None, {}, "ok"
        with self._lock:
            try:
                status, result = self._handle(method, path, environ, version)
                lost = self.take_loss() if method == "POST" else None
            except Reply as reply:
                status, headers, outcome = reply.status, reply.headers, reply.outcome
                result = {"error": {"type": _reason(status).lower().replace(" ", "_"),
                                    "message": reply.message}}
            if lost is not None:
                status, outcome = (None, "dropped") if lost == DROP else (lost, "lost")
                result = {"error": {"type": "server_error", "message": "lost after doing the work"}}
            self._seen.append(SeenRequest(method, path, key, version, status, outcome,
                                          self.clock.now().timestamp()))
        if status is None:
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "64")])
            return [b""]  # short of Content-Length: waitress closes the connection mid-answer
        return _answer(start_response, status, result, headers)

    def _handle(self, method: str, path: str, environ: dict, version: str | None) -> tuple[int, Any]:
        if injected := self.take_failure():
            raise Reply(injected[0], "injected failure", injected[1], outcome="injected")
        if environ.get("HTTP_AUTHORIZATION", "") != f"Bearer {self.api_key}":
            raise Reply(401, "invalid or missing API key")
        if version is not None and version not in self.api_versions:
            raise Reply(400, f"unknown Api-Version-Date {version!r}; known: "
                        f"{', '.join(sorted(self.api_versions))}")
        if over := self.over_rate(self.clock.now().timestamp()):
            raise Reply(429, "You are being rate limited", over, outcome="rate_limited")
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if len(parts) == 2 and parts[0] == "accounts" and parts[1]:
            if method != "GET":
                raise Reply(405, f"{method} not allowed on /accounts/{{id}}")
            return 200, self._get_account(parts[1])
        routes = {("POST", "dm_channels"): self._post_dm_channels, ("POST", "messages"): self._post_messages,
                  ("POST", "notifications"): self._post_notifications}
        if parts == ["messages"] and method == "GET":
            return 200, self._get_messages(parse_qs(environ.get("QUERY_STRING", "")))
        if len(parts) == 1 and (method, parts[0]) in routes:
            body = read_json(environ)
            unknown = sorted(set(body) - FIELDS[parts[0]])
            if unknown:
                raise Reply(400, f"unknown parameter{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(unknown)} for {method} {path}")
            return 200, routes[(method, parts[0])](body, environ.get("HTTP_IDEMPOTENCY_KEY"))
        if len(parts) == 1 and parts[0] in FIELDS:
            raise Reply(405, f"{method} not allowed on {path}")
        raise Reply(404, f"no route for {method} {path}")

    def _chat(self, user_id: str, text: str, company_id: str | None, author: dict, kind: str) -> dict:
        account = company_id or self.company_id
        with self._lock:
            channel = self._open_channel([user_id], account)
            record = self._store(channel, text, author, kind, None)
        return shapes.envelope("chat.message.created", account, {
            "channel": {"id": channel["id"], "type": "direct_message", "experience_id": None},
            "message": dict(record["message"]),
            "audience": {"type": "users", "user_ids": [user_id, self.bot_user["id"]]},
            "reason": "direct_message"}, self.clock.now())

    def _membership(self, kind: str, status: str, user_id: str | None, product_id: str,
                    company_id: str | None, shape: str, name: str | None) -> dict:
        account, now = company_id or self.company_id, self.clock.now()
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {', '.join(SHAPES)}, not {shape!r}")
        if name is not None and shape != "nested":
            raise ValueError("only the older nested shape names the member; pass shape='nested'")
        if shape == "v5":
            action = "membership.went_valid" if status == "active" else "membership.went_invalid"
            return shapes.legacy_envelope(action, user_id, product_id, status == "active")
        if shape == "nested":
            data = shapes.nested_membership(user_id, product_id, account, status, name)
            return shapes.older_envelope(kind, account, data, now)
        return shapes.envelope(kind, account, shapes.membership(user_id, product_id, account, status, now),
                               now)


def _view(record: dict) -> dict:
    return {**record["message"], "channel_id": record["channel_id"],
            "idempotency_key": record["idempotency_key"]}


def _answer(start_response: Callable, status: int, result: Any, headers: dict[str, str]) -> list[bytes]:
    body = json.dumps(result).encode("utf-8")
    start_response(f"{status} {_reason(status)}", [
        ("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers.items()])
    return [body]


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
