"""The fake Whop API's endpoints and state (see fake.py); called with the fake's lock held."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from . import fake_shapes as shapes

MAX_BODY = 1_048_576
MAX_PAGE = 100
FIELDS = MappingProxyType({  # what whop-sdk 2.6.0 may send in each body; the rest is refused
    "dm_channels": frozenset({"with_user_ids", "account_id", "custom_name", "notifications_enabled"}),
    "messages": frozenset({"channel_id", "content", "attachments", "auto_detect_links", "poll",
                           "replying_to_message_id"}),
    "notifications": frozenset({"account_id", "experience_id", "title", "content", "subtitle",
                                "icon_user_id", "rest_path", "user_ids"}),
})


class Reply(Exception):
    """An early answer (an error) from a handler."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None,
                 outcome: str = "refused"):
        super().__init__(message)
        self.status, self.message, self.headers, self.outcome = status, message, headers or {}, outcome


class FakeAPI:
    """State and endpoint handlers; FakeWhop sets the attributes they use."""

    api_key: str
    bot_user: dict
    company_id: str
    owners: dict[str, Any]
    clock: Any

    def _init_state(self) -> None:
        self._channels: dict[str, dict] = {}
        self._channel_by_users: dict[frozenset, str] = {}
        self._messages: dict[str, list[dict]] = {}  # channel id -> records, oldest first
        self._sent: list[dict] = []  # records of messages posted through the API
        self._idempotent: dict[tuple[str, str], tuple[str, dict]] = {}  # (path, key) -> (params, answer)
        self._notifications: list[dict] = []

    def _post_dm_channels(self, body: dict, key: str | None) -> dict:
        users = body.get("with_user_ids")
        if not isinstance(users, list) or not users or not all(isinstance(u, str) and u for u in users):
            raise Reply(422, "with_user_ids must be a non-empty list of user ids")
        for name in ("account_id", "custom_name"):
            if body.get(name) is not None and not isinstance(body[name], str):
                raise Reply(422, f"{name} must be a string")
        channel = self._open_channel(users, body.get("account_id"), body.get("custom_name"))
        return shapes.dm_channel(channel)

    def _post_messages(self, body: dict, key: str | None) -> dict:
        channel_id, content = body.get("channel_id"), body.get("content")
        if not isinstance(channel_id, str) or not channel_id:
            raise Reply(422, "channel_id is required")
        if not isinstance(content, str) or not content.strip():
            raise Reply(422, "content must be a non-empty string")

        def create() -> dict:
            channel = self._channels.get(channel_id)
            if channel is None:
                raise Reply(404, f"channel {channel_id} not found")
            record = self._store(channel, content, self.bot_user, "regular", key)
            self._sent.append(record)
            return record["message"]

        return self._once("messages", key, [channel_id, content], create)

    def _post_notifications(self, body: dict, key: str | None) -> dict:
        for field in ("title", "content"):
            if not isinstance(body.get(field), str) or not body[field]:
                raise Reply(422, f"{field} is required")
        targets = [t for t in ("account_id", "experience_id") if body.get(t) is not None]
        if len(targets) != 1 or not isinstance(body[targets[0]], str) or not body[targets[0]]:
            raise Reply(422, "exactly one of experience_id or account_id is required")
        users = body.get("user_ids")
        if users is not None and (not isinstance(users, list) or not all(isinstance(u, str) for u in users)):
            raise Reply(422, "user_ids must be a list of user ids")

        def create() -> dict:
            self._notifications.append({
                "id": shapes.new_id("ntf"), targets[0]: body[targets[0]], "title": body["title"],
                "content": body["content"], "user_ids": users, "idempotency_key": key,
                "created_at": shapes.iso(self.clock.now())})
            return {"success": True}

        return self._once("notifications", key, [body[targets[0]], body["title"], body["content"], users],
                          create)

    def _get_messages(self, query: dict[str, list[str]]) -> dict:
        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        channel_id = one("channel_id")
        if not channel_id:
            raise Reply(400, "channel_id is required")
        if channel_id not in self._channels:
            raise Reply(404, f"channel {channel_id} not found")
        try:
            first = int(one("first") or 20)
        except ValueError:
            raise Reply(400, "first must be an integer") from None
        if not 1 <= first <= MAX_PAGE:
            raise Reply(400, f"first must be between 1 and {MAX_PAGE}")
        direction = one("direction") or "asc"
        if direction not in ("asc", "desc"):
            raise Reply(400, "direction must be asc or desc")
        ordered = [r["message"] for r in self._messages.get(channel_id, [])]
        if direction == "desc":
            ordered.reverse()
        start = 0
        if after := one("after"):
            ids = [m["id"] for m in ordered]
            target = _uncursor(after)
            if target not in ids:
                raise Reply(400, "after is not a valid cursor")
            start = ids.index(target) + 1
        items = [dict(m) for m in ordered[start:start + first]]
        return shapes.page(items, start=start, total=len(ordered), cursor=_cursor)

    def _get_account(self, account_id: str) -> dict:
        if account_id == "me":
            account_id = self.company_id
        found = next((a for a in self.owners if account_id in (a, a.replace("_", "-"))), None)
        if found is None:
            raise Reply(404, f"account {account_id} not found")
        owner = self.owners[found]
        owner = dict(owner) if isinstance(owner, dict) else {"id": owner, "username": owner, "name": "Owner"}
        return shapes.account(found, owner, self.clock.now())

    def _once(self, what: str, key: str | None, params: list, create: Callable[[], dict]) -> dict:
        """Create once per Idempotency-Key: a resend answers the first answer again."""
        fingerprint = json.dumps(params)
        if key is not None and (what, key) in self._idempotent:
            seen, answer = self._idempotent[(what, key)]
            if seen != fingerprint:
                raise Reply(422, "Idempotency-Key was already used with different parameters")
            return dict(answer)
        answer = create()
        if key is not None:
            self._idempotent[(what, key)] = (fingerprint, answer)
        return dict(answer)

    def _open_channel(self, users: list[str], account: str | None, name: str | None = None) -> dict:
        key = frozenset(users)
        if key in self._channel_by_users:
            return self._channels[self._channel_by_users[key]]
        channel = {"id": shapes.new_id("feed"), "created_at": self.clock.now(), "last_message_at": None,
                   "name": name, "account_id": account}
        self._channels[channel["id"]] = channel
        self._channel_by_users[key] = channel["id"]
        self._messages[channel["id"]] = []
        return channel

    def _store(self, channel: dict, content: str, author: dict, kind: str, key: str | None) -> dict:
        now = self.clock.now()
        record = {"message": shapes.message(shapes.new_id("msg"), content, author, now, message_type=kind),
                  "channel_id": channel["id"], "idempotency_key": key}
        self._messages[channel["id"]].append(record)
        channel["last_message_at"] = now
        return record


def read_json(environ: dict) -> dict:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise Reply(400, "bad Content-Length") from None
    if length > MAX_BODY:
        raise Reply(413, "body too large")
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Reply(400, "body must be JSON") from None
    if not isinstance(body, dict):
        raise Reply(400, "body must be a JSON object")
    return body


def _cursor(message_id: str) -> str:
    return base64.urlsafe_b64encode(message_id.encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
