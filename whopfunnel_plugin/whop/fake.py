"""An offline fake of the Whop API endpoints whopfunnel uses, as a WSGI app.

Serves `whopfunnel serve --demo` and the end-to-end tests over real HTTP (waitress on
loopback). Same paths and payload shapes as the real API (see whop-api.md), with
`/api/v1` accepted as an optional prefix; stdlib only, one lock around all state.
Helpers make the member side of a conversation: `member_says`, `membership_activated`,
`sign` (Standard Webhooks headers with Whop's raw-secret key rule), `fail_next`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote

from ..clock import SystemClock

MAX_BODY = 1_048_576
MAX_PAGE = 100
PREFIX = "/api/v1"


class _Reply(Exception):
    """An early answer (error) from a handler."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _new_id(prefix: str) -> str:
    # Random, not sequential: the demo database outlives a restarted fake, and the server
    # dedupes webhook and message ids.
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def _user(user_id: str, username: str | None = None, name: str | None = None) -> dict:
    return {"id": user_id, "username": username or user_id, "name": name or username or user_id}


class FakeWhop:
    """The fake API; call it as a WSGI app. `owners` maps company id -> owner user id (or dict)."""

    def __init__(self, api_key: str = "fake_whop_key", *, owners: dict[str, Any] | None = None,
                 bot_user_id: str = "user_bot", company_id: str = "biz_demo", clock=None):
        self.api_key = api_key
        self.bot_user = _user(bot_user_id, "funnel-bot", "Funnel Bot")
        self.company_id = company_id
        self.owners = dict(owners or {company_id: "user_owner"})
        self.clock = clock or SystemClock()
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, failed or not
        self._lock = threading.RLock()
        self._channels: dict[str, dict] = {}
        self._channel_by_users: dict[frozenset, str] = {}
        self._messages: dict[str, list[dict]] = {}  # channel id -> messages, oldest first
        self._sent: list[dict] = []
        self._idempotent: dict[str, tuple[str, dict]] = {}  # key -> (request fingerprint, message)
        self._notifications: list[dict] = []
        self._faults: list[tuple[int, dict[str, str]]] = []

    def __repr__(self) -> str:
        return f"FakeWhop(company_id={self.company_id!r}, channels={len(self._channels)})"

    # -- test and demo helpers -------------------------------------------------------------

    def sent_messages(self, channel_id: str | None = None) -> list[dict]:
        """Messages posted through the API (by the bot), oldest first."""
        with self._lock:
            return [dict(m) for m in self._sent if channel_id is None or m["channel_id"] == channel_id]

    def messages(self, channel_id: str) -> list[dict]:
        """Every message in a channel, from either side, oldest first."""
        with self._lock:
            return [dict(m) for m in self._messages.get(channel_id, [])]

    @property
    def notifications(self) -> list[dict]:
        with self._lock:
            return [dict(n) for n in self._notifications]

    def fail_next(self, n: int, status: int = 500, headers: dict[str, str] | None = None) -> None:
        """Answer the next `n` requests with `status` (and `headers`), before anything else."""
        with self._lock:
            self._faults.extend([(status, dict(headers or {}))] * n)

    def clear_faults(self) -> None:
        """Forget the failures fail_next() queued: the API is healthy again."""
        with self._lock:
            self._faults.clear()

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
            self._channels[channel_id] = {"id": channel_id, "created_at": self._now(),
                                          "last_message_at": None, "name": user_id,
                                          "company_id": company_id or self.company_id}
            self._channel_by_users[key] = channel_id
            self._messages[channel_id] = []

    def member_says(self, user_id: str, text: str, *, company_id: str | None = None,
                    username: str | None = None) -> dict:
        """Record a message from the member in their DM channel; returns its webhook envelope."""
        company = company_id or self.company_id
        with self._lock:
            channel = self._open_channel([user_id], company)
            message = self._store(channel, text, _user(user_id, username))
        public = {k: v for k, v in message.items() if k != "channel_id"}
        return self._envelope("chat.message.created", company, {
            "channel": {"id": channel["id"], "type": "direct_message"},
            "message": public, "audience": {"user_ids": [user_id, self.bot_user["id"]]},
            "reason": "direct_message"})

    def membership_activated(self, user_id: str, product_id: str, company_id: str | None = None,
                             newer_shape: bool = False, name: str | None = None) -> dict:
        return self._membership("membership.activated", "active", user_id, product_id,
                                company_id or self.company_id, newer_shape, name)

    def membership_deactivated(self, user_id: str, product_id: str, company_id: str | None = None,
                               newer_shape: bool = False) -> dict:
        return self._membership("membership.deactivated", "canceled", user_id, product_id,
                                company_id or self.company_id, newer_shape)

    @staticmethod
    def sign(body: bytes, secret: str, msg_id: str, timestamp: int) -> dict[str, str]:
        """Standard Webhooks headers; Whop keys the HMAC with the secret's raw UTF-8 bytes."""
        content = f"{msg_id}.{timestamp}.".encode() + body
        digest = hmac.new(secret.encode("utf-8"), content, hashlib.sha256).digest()
        return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
                "webhook-signature": "v1," + base64.b64encode(digest).decode("ascii")}

    # -- WSGI --------------------------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        if path.startswith(PREFIX + "/"):
            path = path[len(PREFIX):]
        with self._lock:
            self.requests.append((method, path))
            try:
                if self._faults:
                    status, headers = self._faults.pop(0)
                    raise _Reply(status, "injected failure", headers)
                if environ.get("HTTP_AUTHORIZATION", "") != f"Bearer {self.api_key}":
                    raise _Reply(401, "invalid or missing API key")
                status, result = self._route(method, path, environ)
                headers = {}
            except _Reply as reply:
                status, headers = reply.status, reply.headers
                result = {"error": {"type": _reason(status).lower().replace(" ", "_"),
                                    "message": reply.message}}
        body = json.dumps(result).encode("utf-8")
        start_response(f"{status} {_reason(status)}", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers.items()])
        return [body]

    def _route(self, method: str, path: str, environ: dict) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        routes = {("POST", "dm_channels"): self._post_dm_channels,
                  ("POST", "messages"): self._post_messages, ("GET", "messages"): self._get_messages,
                  ("POST", "notifications"): self._post_notifications}
        if len(parts) == 2 and parts[0] == "companies" and parts[1]:
            if method != "GET":
                raise _Reply(405, f"{method} not allowed on /companies/{{id}}")
            return 200, self._get_company(parts[1])
        if len(parts) == 1 and (method, parts[0]) in routes:
            handler = routes[(method, parts[0])]
            if method == "GET":
                return 200, handler(parse_qs(environ.get("QUERY_STRING", "")))
            return 200, handler(_read_json(environ), environ)
        if len(parts) == 1 and parts[0] in ("dm_channels", "messages", "notifications"):
            raise _Reply(405, f"{method} not allowed on {path}")
        raise _Reply(404, f"no route for {method} {path}")

    def _post_dm_channels(self, body: dict, environ: dict) -> dict:
        users = body.get("with_user_ids")
        if not isinstance(users, list) or not users or not all(isinstance(u, str) and u for u in users):
            raise _Reply(422, "with_user_ids must be a non-empty list of user ids")
        company = body.get("company_id")
        if company is not None and not isinstance(company, str):
            raise _Reply(422, "company_id must be a string")
        channel = self._open_channel(users, company)
        return {k: channel[k] for k in ("id", "created_at", "last_message_at", "name")}

    def _post_messages(self, body: dict, environ: dict) -> dict:
        channel_id, content = body.get("channel_id"), body.get("content")
        if not isinstance(channel_id, str) or not channel_id:
            raise _Reply(422, "channel_id is required")
        if not isinstance(content, str) or not content.strip():
            raise _Reply(422, "content must be a non-empty string")
        key = environ.get("HTTP_IDEMPOTENCY_KEY")
        fingerprint = json.dumps([channel_id, content])
        if key and key in self._idempotent:
            seen, message = self._idempotent[key]
            if seen != fingerprint:
                raise _Reply(422, "Idempotency-Key was already used with different parameters")
            return dict(message)
        channel = self._channels.get(channel_id)
        if channel is None:
            raise _Reply(404, f"channel {channel_id} not found")
        message = self._store(channel, content, self.bot_user)
        self._sent.append(message)
        if key:
            self._idempotent[key] = (fingerprint, message)
        return dict(message)

    def _get_messages(self, query: dict[str, list[str]]) -> dict:
        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        channel_id = one("channel_id")
        if not channel_id:
            raise _Reply(400, "channel_id is required")
        if channel_id not in self._channels:
            raise _Reply(404, f"channel {channel_id} not found")
        try:
            first = int(one("first") or 20)
        except ValueError:
            raise _Reply(400, "first must be an integer") from None
        if not 1 <= first <= MAX_PAGE:
            raise _Reply(400, f"first must be between 1 and {MAX_PAGE}")
        direction = one("direction") or "asc"
        if direction not in ("asc", "desc"):
            raise _Reply(400, "direction must be asc or desc")
        ordered = list(self._messages.get(channel_id, []))
        if direction == "desc":
            ordered.reverse()
        start = 0
        if after := one("after"):
            ids = [m["id"] for m in ordered]
            target = _uncursor(after)
            if target not in ids:
                raise _Reply(400, "after is not a valid cursor")
            start = ids.index(target) + 1
        page = ordered[start:start + first]
        data = [{k: v for k, v in m.items() if k != "channel_id"} for m in page]
        return {"data": data, "page_info": {
            "start_cursor": _cursor(page[0]["id"]) if page else None,
            "end_cursor": _cursor(page[-1]["id"]) if page else None,
            "has_next_page": start + len(page) < len(ordered), "has_previous_page": start > 0}}

    def _get_company(self, company_id: str) -> dict:
        if company_id not in self.owners:
            raise _Reply(404, f"company {company_id} not found")
        owner = self.owners[company_id]
        owner_user = dict(owner) if isinstance(owner, dict) else _user(owner, owner, "Owner")
        return {"id": company_id, "title": f"Company {company_id}", "owner_user": owner_user}

    def _post_notifications(self, body: dict, environ: dict) -> dict:
        for field in ("company_id", "title", "content"):
            if not isinstance(body.get(field), str) or not body[field]:
                raise _Reply(422, f"{field} is required")
        users = body.get("user_ids")
        if users is not None and (not isinstance(users, list) or not all(isinstance(u, str) for u in users)):
            raise _Reply(422, "user_ids must be a list of user ids")
        note = {"id": _new_id("ntf"), "company_id": body["company_id"], "title": body["title"],
                "content": body["content"], "user_ids": users, "created_at": self._now()}
        self._notifications.append(note)
        return {"success": True, **note}

    # -- state -------------------------------------------------------------------------------

    def _open_channel(self, users: list[str], company: str | None) -> dict:
        key = frozenset(users)
        if key in self._channel_by_users:
            return self._channels[self._channel_by_users[key]]
        channel = {"id": _new_id("feed"), "created_at": self._now(), "last_message_at": None,
                   "name": ", ".join(sorted(users)), "company_id": company}
        self._channels[channel["id"]] = channel
        self._channel_by_users[key] = channel["id"]
        self._messages[channel["id"]] = []
        return channel

    def _store(self, channel: dict, content: str, user: dict) -> dict:
        now = self._now()
        message = {"id": _new_id("msg"), "channel_id": channel["id"], "content": content,
                   "created_at": now, "user": dict(user)}
        self._messages[channel["id"]].append(message)
        channel["last_message_at"] = now
        return message

    def _membership(self, kind: str, status: str, user_id: str, product_id: str, company: str,
                    newer: bool, name: str | None = None) -> dict:
        if newer:
            data = {"id": _new_id("mem"), "user_id": user_id, "product_id": product_id,
                    "plan_id": _new_id("plan"), "account": {"id": company, "title": f"Company {company}"},
                    "status": status}
        else:
            data = {"id": _new_id("mem"), "status": status, "user": _user(user_id, name=name),
                    "product": {"id": product_id, "title": f"Product {product_id}"},
                    "company": {"id": company, "title": f"Company {company}"}}
        return self._envelope(kind, company, data)

    def _envelope(self, kind: str, company: str, data: dict) -> dict:
        return {"id": _new_id("evt"), "api_version": "v1", "type": kind, "timestamp": self._now(),
                "company_id": company, "data": data}

    def _now(self) -> str:
        return self.clock.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _read_json(environ: dict) -> dict:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise _Reply(400, "bad Content-Length") from None
    if length > MAX_BODY:
        raise _Reply(413, "body too large")
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _Reply(400, "body must be JSON") from None
    if not isinstance(body, dict):
        raise _Reply(400, "body must be a JSON object")
    return body


def _cursor(message_id: str) -> str:
    return base64.urlsafe_b64encode(message_id.encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def serve_in_thread(app: Callable, host: str = "127.0.0.1", port: int = 0) -> tuple[str, Callable[[], None]]:
    """Serve `app` with waitress in a daemon thread; returns (base URL, stop)."""
    from waitress import create_server, wasyncore

    server = create_server(app, host=host, port=port, threads=4, ident="fakewhop")
    thread = threading.Thread(target=server.run, name="fakewhop", daemon=True)
    thread.start()

    def stop() -> None:
        # Close every socket from inside the loop's own thread (via its trigger), so the
        # loop sees an empty map and returns instead of racing a close from outside.
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(timeout=5)
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)

    return f"http://{host}:{server.effective_port}", stop
