"""The JSON shapes the fake Whop API answers and sends, as whop-sdk 2.6.0's models define them.

Every required field of each model is present (the contract tests parse them with the
SDK itself); optional ones appear where whopfunnel or a developer would look at them.
Model and file in the SDK package, per builder:

    message()      types/message.py Message (and MessageListItem, the same fields)
    dm_channel()   types/dm_channel.py DmChannel
    account()      types/account.py Account, `owner` a types/user_summary.py UserSummary
    membership()   types/membership.py Membership (`user_id` may be null)
    envelope()     memberships/types/post_membership_activated_payload.py and
                   messages/types/post_chat_message_created_payload.py: {id, api_version,
                   account_id, timestamp, type, data}

Older shapes, which Whop still delivers to older webhooks: `nested_membership()` (with
`user`, `product`, `company` objects) and `legacy_envelope()` (v5, `action`).
"""

from __future__ import annotations

import uuid
from datetime import datetime


def new_id(prefix: str) -> str:
    # Random, not sequential: the demo database outlives a restarted fake, and the server
    # dedupes webhook and message ids.
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def millis(when: datetime) -> str:
    """DmChannel.created_at and Account.created_at: "milliseconds since Unix epoch", a string."""
    return str(int(when.timestamp() * 1000))


def user(user_id: str, username: str | None = None, name: str | None = None) -> dict:
    """MessageUser: {id, username, name}."""
    return {"id": user_id, "username": username or user_id, "name": name or username or user_id}


def message(message_id: str, content: str | None, author: dict, when: datetime, *,
            message_type: str = "regular") -> dict:
    stamp = iso(when)
    return {"id": message_id, "content": content, "created_at": stamp, "updated_at": stamp,
            "user": dict(author), "message_type": message_type, "is_edited": False,
            "is_pinned": False, "mentions": [], "mentions_everyone": False, "poll": None,
            "poll_votes": [], "reaction_counts": [], "replying_to_message_id": None,
            "view_count": None}


def dm_channel(channel: dict) -> dict:
    last = channel["last_message_at"]
    return {"id": channel["id"], "created_at": millis(channel["created_at"]),
            "last_message_at": iso(last) if last else None, "name": channel["name"]}


def page(items: list[dict], *, start: int, total: int, cursor) -> dict:
    return {"data": items, "page_info": {
        "start_cursor": cursor(items[0]["id"]) if items else None,
        "end_cursor": cursor(items[-1]["id"]) if items else None,
        "has_next_page": start + len(items) < total, "has_previous_page": start > 0}}


def account(account_id: str, owner: dict, when: datetime) -> dict:
    """An Account with every required field; `owner` is a UserSummary."""
    owner = {"id": owner["id"], "username": owner.get("username") or owner["id"],
             "name": owner.get("name"),
             "profile_picture": {"url": f"https://img.whop.test/avatar/{owner['id']}.png"}}
    return {"id": account_id, "title": f"Account {account_id}", "route": account_id.replace("_", "-"),
            "created_at": millis(when), "owner": owner, "balances": [], "platform_credits": [],
            "can_transfer_pending_balance_to_children": False, "collect_vat_id": False,
            "company_formation": {}, "dispute_fighter_enabled": False, "economic_intelligence": False,
            "home_preferences": [], "metadata": {}, "orchestration_enabled": False, "require_2fa": False,
            "send_customer_emails": True, "show_joined_whops": True, "show_reviews_dtc": False,
            "show_user_directory": False, "social_links": [],
            "store_page_config": {"whop_affiliate_link": False}, "tax_collection_enabled_states": [],
            "tax_identifiers": [],
            "use_logo_as_opengraph_image_fallback": False, "verification": {}}


def membership(user_id: str | None, product_id: str, account_id: str, status: str, when: datetime) -> dict:
    """A Membership; `user_id` None is a membership bought by a business, or unclaimed."""
    stamp = iso(when)
    return {"id": new_id("mem"), "user_id": user_id, "member_id": new_id("mber") if user_id else None,
            "product_id": product_id, "plan_id": new_id("plan"),
            "product": {"id": product_id, "title": f"Product {product_id}", "logo_url": None},
            "account": {"id": account_id, "title": f"Account {account_id}",
                        "route": account_id.replace("_", "-"), "logo_url": None},
            "status": status, "cancel_at_period_end": False, "created_at": stamp, "updated_at": stamp,
            "metadata": {}, "initial_price": {"amount": "0.00", "currency": "usd", "decimals": 2,
                                              "display_decimals": 2}}


def nested_membership(user_id: str | None, product_id: str, account_id: str, status: str,
                      name: str | None = None) -> dict:
    """The older nested shape: the only one that names the member."""
    data = {"id": new_id("mem"), "status": status,
            "product": {"id": product_id, "title": f"Product {product_id}"},
            "company": {"id": account_id, "title": f"Company {account_id}"}}
    if user_id is not None:
        data["user"] = user(user_id, name=name)
    return data


def envelope(kind: str, account_id: str, data: dict, when: datetime) -> dict:
    return {"id": new_id("evt"), "api_version": "v1", "type": kind, "timestamp": iso(when),
            "account_id": account_id, "data": data}


def older_envelope(kind: str, account_id: str, data: dict, when: datetime) -> dict:
    """The envelope older webhooks carry: `company_id` where today's has `account_id`."""
    return {"id": new_id("evt"), "api_version": "v1", "type": kind, "timestamp": iso(when),
            "company_id": account_id, "data": data}


def legacy_envelope(action: str, user_id: str | None, product_id: str, valid: bool) -> dict:
    """The v5 generation: `action`, a flat membership."""
    return {"api_version": "v5", "action": action, "data": {
        "id": new_id("mem"), "user_id": user_id, "product_id": product_id, "plan_id": new_id("plan"),
        "status": "active" if valid else "expired", "valid": valid}}
