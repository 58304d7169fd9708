"""Events a host hands to whopfunnel: frozen, keyword-only dataclasses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

# The longest member text stored and matched: a DM past this is cut (SPEC §6: input
# that cannot be stored is made storable, never answered 500 on every redelivery).
MAX_TEXT = 10_000
MAX_ID = 128  # Whop ids are short; longer ones cannot be stored (and are not Whop's)
MAX_NAME = 255
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def storable_text(text: str, limit: int = MAX_TEXT) -> str:
    """`text` as every engine can store it: NUL (refused by PostgreSQL's text) and lone
    surrogates (valid in JSON, invalid in UTF-8) become U+FFFD, and anything past `limit`
    characters is cut."""
    if len(text) > limit:
        text = text[:limit]
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return _LONE_SURROGATE.sub("\ufffd", text) if not text.isascii() else text


def overlong_id(event) -> str | None:
    """The first id field of an event longer than MAX_ID, or None."""
    for name in ("experience_id", "user_id", "message_id", "channel_id", "company_id",
                 "product_id", "funnel_id"):
        value = getattr(event, name, None)
        if isinstance(value, str) and len(value) > MAX_ID:
            return name
    return None


@dataclass(frozen=True, kw_only=True)
class MemberJoined:
    """A member joined a Whop product (webhook `membership.activated` or a host call)."""

    experience_id: str
    user_id: str
    company_id: str | None = None
    product_id: str | None = None
    user_name: str | None = None
    funnel_id: str | None = None  # start this funnel; None: the plugin.yaml routes decide
    delivery_id: str | None = None  # a webhook delivery id: processed with the join, once


@dataclass(frozen=True, kw_only=True)
class MessageReceived:
    """A member's direct message arrived."""

    experience_id: str
    user_id: str
    message_id: str
    text: str
    channel_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class MembershipEnded:
    """A member's membership ended (`membership.deactivated`)."""

    experience_id: str
    user_id: str
    company_id: str | None = None
    product_id: str | None = None
    delivery_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Conversation:
    """A read-only snapshot of a conversation, as hooks and callers see it."""

    id: int
    experience_id: str
    user_id: str
    funnel_id: str
    funnel_version: str
    block: str
    status: str
    end_reason: str | None
    invalid_count: int
    variables: dict
    started_at: datetime
    last_activity: datetime
    expires_at: datetime | None
    ended_at: datetime | None = None
    user_name: str | None = None
    company_id: str | None = None
    product_id: str | None = None
    channel_id: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What handling one event did (the built-in funnel plugin's `on_member_join` and
    `on_message` return it). `status` is one of: started, kept, restarted, advanced,
    duplicate, unrouted, ended, inactive, no_funnel."""

    status: str
    conversation: Conversation | None = None
    messages: tuple[str, ...] = ()
    decision: object | None = None  # the engine's Decision, for hosts that show their work
