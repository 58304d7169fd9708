"""Contract tests against the official SDK, whop-sdk 2.6 (a test dependency, never a runtime one).

(a) the SDK's client drives the built-in fake over real HTTP and parses every answer into
    its models; the fake's webhooks validate as the SDK's payload models;
(b) webhooks built from the SDK's models and signed the SDK's way are verified and parsed
    by whopfunnel into the right events;
(c) on a recording transport, whopfunnel's request for each call matches the SDK's.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timezone

import httpx
import pydantic
import pytest
import standardwebhooks
from whop_sdk import Whop
from whop_sdk.core.api_error import ApiError
from whop_sdk.environment import WhopEnvironment
from whop_sdk.lib.verify_webhook import unwrap
from whop_sdk.memberships.types.post_membership_activated_payload import PostMembershipActivatedPayload
from whop_sdk.messages.types.post_chat_message_created_payload import PostChatMessageCreatedPayload
from whop_sdk.messages.types.post_chat_message_created_payload_data import PostChatMessageCreatedPayloadData
from whop_sdk.messages.types.post_chat_message_created_payload_data_audience import (
    PostChatMessageCreatedPayloadDataAudience,
)
from whop_sdk.messages.types.post_chat_message_created_payload_data_channel import (
    PostChatMessageCreatedPayloadDataChannel,
)
from whop_sdk.types.account import Account
from whop_sdk.types.dm_channel import DmChannel
from whop_sdk.types.membership import Membership
from whop_sdk.types.membership_product import MembershipProduct
from whop_sdk.types.message import Message
from whop_sdk.types.message_list_item import MessageListItem
from whop_sdk.types.message_user import MessageUser
from whop_sdk.types.money import Money
from whop_sdk.types.storefront_account import StorefrontAccount

from whopfunnel_plugin.events import MemberJoined, MembershipEnded, MessageReceived
from whopfunnel_plugin.whop.client import WhopClient
from whopfunnel_plugin.whop.fake import FakeWhop, serve_in_thread
from whopfunnel_plugin.whop.signatures import sign
from whopfunnel_plugin.whop.webhooks import Ignored, parse, to_event, verify

KEY = "whop_sk_contract_test_key"
SECRET = "ws_contract_3f1c2a9b8d7e6f5a4b3c"
ROUTES = {"prod_1": "exp_1", "biz_1": "exp_biz"}


def route(info):
    return ROUTES.get(info.get("product_id") or "") or ROUTES.get(info.get("company_id") or "")


@pytest.fixture
def fake():
    return FakeWhop(KEY, owners={"biz_1": {"id": "user_owner", "username": "olivia", "name": "Olivia"}},
                    company_id="biz_1")


@pytest.fixture
def sdk(fake):
    """The official client on the fake, over real HTTP on loopback."""
    base_url, stop = serve_in_thread(fake)
    client = Whop(token=KEY, environment=WhopEnvironment(api=f"{base_url}/api/v1", vault=base_url),
                  max_retries=0, timeout=10)
    try:
        yield client
    finally:
        stop()


# -- (a) the SDK drives the fake --------------------------------------------------------------


def test_the_sdk_drives_the_fake_and_parses_every_answer(sdk, fake):
    channel = sdk.dm_channels.create(with_user_ids=["user_1"], account_id="biz_1")
    assert isinstance(channel, DmChannel) and channel.id.startswith("feed_")
    assert sdk.dm_channels.create(with_user_ids=["user_1"], account_id="biz_1").id == channel.id

    sent = sdk.messages.create(channel_id=channel.id, content="Welcome!",
                               request_options={"additional_headers": {"Idempotency-Key": "wf-1"}})
    assert isinstance(sent, Message)
    assert (sent.content, sent.message_type, sent.user.id) == ("Welcome!", "regular", "user_bot")
    assert sent.created_at.tzinfo is not None and sent.is_edited is False

    for i in range(4):
        fake.member_says("user_1", f"reply {i}")
    listed = list(sdk.messages.list(channel_id=channel.id, first=2, direction="asc"))
    assert all(isinstance(m, MessageListItem) for m in listed)
    assert [m.content for m in listed] == ["Welcome!", "reply 0", "reply 1", "reply 2", "reply 3"]

    account = sdk.accounts.retrieve("biz_1")
    assert isinstance(account, Account)
    assert (account.id, account.owner.id, account.owner.username) == ("biz_1", "user_owner", "olivia")

    assert sdk.notifications.create(title="Member needs help", content="Ann asked", account_id="biz_1",
                                    user_ids=["user_owner"]).success is True
    assert sdk.notifications.create(title="Office hours", content="at 5", experience_id="exp_1").success

    seen = fake.seen_requests()
    assert {r.api_version_date for r in seen} == {"2026-10-15-1"}  # the SDK's default, accepted
    assert [r.idempotency_key for r in seen if r.path == "/messages" and r.method == "POST"] == ["wf-1"]
    assert {r.status for r in seen} == {200}


def test_the_sdk_models_are_strict_enough_to_catch_the_old_fake():
    # What the fake answered before: the SDK cannot parse it, so (a) above can fail.
    old = {"id": "msg_1", "content": "hi", "created_at": "2026-03-01T12:00:00Z",
           "user": {"id": "user_bot", "username": "bot", "name": "Bot"}}
    with pytest.raises(pydantic.ValidationError, match="is_edited"):
        Message.model_validate(old)
    with pytest.raises(pydantic.ValidationError, match="owner"):
        Account.model_validate({"id": "biz_1", "title": "Acme", "owner_user": {"id": "user_owner"}})


def test_the_fakes_webhooks_are_the_sdks_payload_models(fake):
    for envelope in (fake.membership_activated("user_1", "prod_1"),
                     fake.membership_activated(None, "prod_1"),
                     fake.membership_deactivated("user_1", "prod_1")):
        payload = PostMembershipActivatedPayload.model_validate(envelope)
        assert isinstance(payload.data, Membership) and payload.account_id == "biz_1"
    for envelope in (fake.member_says("user_1", "2"), fake.system_message("user_1", "joined")):
        payload = PostChatMessageCreatedPayload.model_validate(envelope)
        assert payload.data.channel.type == "direct_message"
    assert payload.data.message.message_type == "system"


def test_the_fake_refuses_an_unknown_version_date_from_the_sdk(fake):
    base_url, stop = serve_in_thread(fake)
    try:
        wrong = Whop(token=KEY, environment=WhopEnvironment(api=f"{base_url}/api/v1", vault=base_url),
                     api_version_date="2031-01-01", max_retries=0)
        with pytest.raises(ApiError) as info:
            wrong.accounts.retrieve("biz_1")
    finally:
        stop()
    assert info.value.status_code == 400
    assert "unknown Api-Version-Date" in json.dumps(info.value.body)


# -- (b) webhooks built and signed the SDK's way ------------------------------------------------


def sdk_sign(body: bytes, msg_id: str, when: int) -> dict[str, str]:
    """Signed as whop_sdk.lib.verify_webhook verifies: the raw secret base64-encoded for
    standardwebhooks, which decodes it back (the SDK's own `_hmac_key`)."""
    key = base64.b64encode(SECRET.encode()).decode()
    signature = standardwebhooks.Webhook(key).sign(msg_id, datetime.fromtimestamp(when, tz=timezone.utc),
                                                   body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(when), "webhook-signature": signature}


def membership(user_id: str | None) -> Membership:
    return Membership(
        id="mem_1", user_id=user_id, product_id="prod_1", plan_id="plan_1", status="active",
        product=MembershipProduct(id="prod_1", title="Course"),
        account=StorefrontAccount(id="biz_1", route="acme", title="Acme"),
        cancel_at_period_end=False, created_at="2026-03-01T12:00:00Z", updated_at="2026-03-01T12:00:00Z",
        metadata={}, initial_price=Money(amount="0.00", currency="usd", decimals=2, display_decimals=2))


def chat(message_type: str = "regular", channel_type: str = "direct_message",
         author: str = "user_1") -> PostChatMessageCreatedPayload:
    stamp = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    message = Message(
        id="msg_9", content="2", created_at=stamp, updated_at=stamp, message_type=message_type,
        user=MessageUser(id=author, username="ada", name="Ada"), is_edited=False, is_pinned=False,
        mentions=[], mentions_everyone=False, poll_votes=[], reaction_counts=[])
    return PostChatMessageCreatedPayload(
        id="evt_2", api_version="v1", type="chat.message.created", timestamp=stamp, account_id="biz_1",
        data=PostChatMessageCreatedPayloadData(
            channel=PostChatMessageCreatedPayloadDataChannel(id="feed_1", type=channel_type),
            message=message, reason="direct_message",
            audience=PostChatMessageCreatedPayloadDataAudience(type="users", user_ids=["user_1"])))


def joined(kind: str, user_id: str | None) -> PostMembershipActivatedPayload:
    # The SDK has no model for membership.deactivated; its data is a Membership too.
    return PostMembershipActivatedPayload(
        id="evt_1", api_version="v1", type=kind, account_id="biz_1",
        timestamp=datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc), data=membership(user_id))


@pytest.mark.parametrize("payload, expected", [
    (joined("membership.activated", "user_1"),
     MemberJoined(experience_id="exp_1", user_id="user_1", company_id="biz_1", product_id="prod_1")),
    (joined("membership.deactivated", "user_1"),
     MembershipEnded(experience_id="exp_1", user_id="user_1", company_id="biz_1", product_id="prod_1")),
    (joined("membership.activated", None),
     Ignored("membership without a user (bought by a business, or unclaimed)")),
    (chat(), MessageReceived(experience_id="exp_biz", user_id="user_1", message_id="msg_9", text="2",
                             channel_id="feed_1")),
    (chat(message_type="system"), Ignored("a system message, not a member's reply")),
    (chat(message_type="automated"), Ignored("a automated message, not a member's reply")),
    (chat(channel_type="chat"), Ignored("not a direct message channel (chat)")),
    (chat(author="user_bot"), Ignored("the bot's own message")),
], ids=["joined", "ended", "no-user", "dm", "system", "automated", "group-chat", "own-message"])
def test_sdk_built_and_signed_webhooks_become_the_right_events(payload, expected):
    body = payload.json().encode()  # the SDK's serialisation: by alias, unset fields left out
    now = int(time.time())
    headers = sdk_sign(body, "msg_2Xa9", now)
    assert unwrap(body, headers=headers, key=SECRET)["id"] == payload.id  # the SDK accepts its own
    assert verify(headers, body, SECRET, now=now) == "msg_2Xa9"
    assert to_event(parse(body), bot_user_id="user_bot", route=route) == expected


def test_our_signature_is_what_the_sdk_verifies_and_a_decoded_key_is_not():
    body = json.dumps({"id": "evt_1", "type": "membership.activated", "data": {}}).encode()
    now = int(time.time())
    assert unwrap(body, headers=sign(body, SECRET, "msg_1", now), key=SECRET)["id"] == "evt_1"
    decoded = standardwebhooks.Webhook("whsec_" + base64.b64encode(b"other").decode())
    wrong = decoded.sign("msg_1", datetime.fromtimestamp(now, tz=timezone.utc), body.decode())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": wrong}
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        unwrap(body, headers=headers, key=SECRET)


# -- (c) the same call, the same request ------------------------------------------------------


class Recorder(httpx.BaseTransport):
    """Forwards to the fake in-process and keeps every request."""

    def __init__(self, fake):
        self.inner = httpx.WSGITransport(app=fake)
        self.requests: list[httpx.Request] = []

    def handle_request(self, request):
        request.read()
        self.requests.append(request)
        return self.inner.handle_request(request)


def shape(request: httpx.Request) -> dict:
    body = json.loads(request.content) if request.content else None
    return {"method": request.method, "path": request.url.path, "query": dict(request.url.params),
            "body": body, "body keys": sorted(body) if body else [],
            "api-version-date": request.headers.get("api-version-date"),
            "idempotency-key": request.headers.get("idempotency-key"),
            "authorization": request.headers.get("authorization"),
            "json": request.headers.get("content-type", "").startswith("application/json")}


def key(value: str) -> dict:
    """How an SDK caller sends an Idempotency-Key: per request, as an extra header."""
    return {"additional_headers": {"Idempotency-Key": value}}


# name: (whopfunnel's call, the SDK's call), each given (client, DM channel id, a cursor)
CALLS = {
    "open a DM": (
        lambda c, ch, at: c.open_dm_channel("user_1", "biz_1"),
        lambda s, ch, at: s.dm_channels.create(with_user_ids=["user_1"], account_id="biz_1")),
    "send": (
        lambda c, ch, at: c.send_message(ch, "Welcome **Ada**", idempotency_key="wf-42"),
        lambda s, ch, at: s.messages.create(channel_id=ch, content="Welcome **Ada**",
                                            request_options=key("wf-42"))),
    "poll": (
        lambda c, ch, at: c.list_messages(ch, first=10),
        lambda s, ch, at: s.messages.list(channel_id=ch, first=10, direction="asc")),
    "poll after": (
        lambda c, ch, at: c.list_messages(ch, after=at, first=10),
        lambda s, ch, at: s.messages.list(channel_id=ch, after=at, first=10, direction="asc")),
    "owner": (
        lambda c, ch, at: c.get_account("biz_1"),
        lambda s, ch, at: s.accounts.retrieve("biz_1")),
    "notify the team": (
        lambda c, ch, at: c.post_notification("Help", "Ann asked", account_id="biz_1",
                                              user_ids=["user_owner"], idempotency_key="wf-42-n"),
        lambda s, ch, at: s.notifications.create(title="Help", content="Ann asked", account_id="biz_1",
                                                 user_ids=["user_owner"], request_options=key("wf-42-n"))),
    "notify an experience": (
        lambda c, ch, at: c.post_notification("Help", "Ann asked", experience_id="exp_1"),
        lambda s, ch, at: s.notifications.create(title="Help", content="Ann asked", experience_id="exp_1")),
}


@pytest.mark.parametrize("name", CALLS)
def test_whopfunnel_sends_the_request_the_sdk_sends(fake, name):
    ours, theirs = CALLS[name]
    channel = fake.channel_for("user_1", "biz_1")
    fake.member_says("user_1", "hello")
    with WhopClient(KEY, base_url="http://whop.test/api/v1", transport=httpx.WSGITransport(app=fake)) as c:
        cursor = c.list_messages(channel).end_cursor
    seen = {}
    for who, call in (("whopfunnel", ours), ("sdk", theirs)):
        recorder = Recorder(fake)
        if who == "whopfunnel":
            with WhopClient(KEY, base_url="http://whop.test/api/v1", transport=recorder, max_retries=0) as c:
                call(c, channel, cursor)
        else:
            sdk = Whop(token=KEY, environment=WhopEnvironment(api="http://whop.test/api/v1", vault=""),
                       httpx_client=httpx.Client(transport=recorder), max_retries=0)
            call(sdk, channel, cursor)
        (request,) = recorder.requests
        seen[who] = shape(request)
    assert seen["whopfunnel"] == seen["sdk"]
    assert seen["sdk"]["api-version-date"] == "2026-10-15-1"


def test_the_sdk_is_a_test_dependency_only():
    import configparser

    from ..conftest import ROOT

    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert "whop-sdk" not in setup["options"]["install_requires"]
    assert "whop-sdk==2.6.*" in setup["options.extras_require"]["test"]
    users = [p for p in (ROOT / "whopfunnel_plugin").rglob("*.py") if "whop_sdk" in p.read_text()]
    assert users == []
