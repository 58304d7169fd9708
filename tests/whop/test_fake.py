"""The Whop client against the built-in fake, served over real HTTP on loopback."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from whopfunnel_plugin.errors import RetryLater, WhopAPIError
from whopfunnel_plugin.events import MemberJoined, MembershipEnded, MessageReceived
from whopfunnel_plugin.whop.client import WhopClient
from whopfunnel_plugin.whop.fake import FakeWhop, serve_in_thread
from whopfunnel_plugin.whop.webhooks import Ignored, parse, to_event, verify

KEY = "fake_sk_test_key_123"
SECRET = "ws_3f1c2a9b8d7e6f5a4b3c2d1e0f9a8b7c"


@pytest.fixture
def fake():
    return FakeWhop(KEY, owners={"biz_1": "user_owner"}, company_id="biz_1")


@pytest.fixture
def served(fake):
    base_url, stop = serve_in_thread(fake)
    try:
        yield base_url
    finally:
        stop()


class Time:
    """Monotonic time that moves only when the client sleeps; records the sleeps."""

    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def client(served):
    time = Time()
    with WhopClient(KEY, base_url=served, sleep=time.sleep, monotonic=lambda: time.now, timeout=5) as c:
        c.sleeps = time.sleeps
        yield c


def raw(served, method, path, **kwargs):
    headers = {"Authorization": f"Bearer {KEY}", **kwargs.pop("headers", {})}
    return httpx.request(method, served + path, headers=headers, timeout=5, **kwargs)


def test_opening_a_channel_twice_returns_the_same_channel(client):
    first = client.open_dm_channel("user_1", "biz_1")
    assert client.open_dm_channel("user_1", "biz_1") == first
    assert client.open_dm_channel("user_2", "biz_1") != first


def test_same_idempotency_key_stores_one_message(client, fake):
    channel = client.open_dm_channel("user_1", "biz_1")
    a = client.send_message(channel, "Welcome!", idempotency_key="wf-1")
    b = client.send_message(channel, "Welcome!", idempotency_key="wf-1")
    assert a == b and a["user"]["id"] == "user_bot"
    client.send_message(channel, "Welcome!", idempotency_key="wf-2")
    assert [m["content"] for m in fake.sent_messages(channel)] == ["Welcome!", "Welcome!"]
    assert fake.sent_messages("feed_other") == []


def test_reusing_a_key_for_different_content_is_refused(client):
    channel = client.open_dm_channel("user_1")
    client.send_message(channel, "one", idempotency_key="k")
    with pytest.raises(WhopAPIError) as info:
        client.send_message(channel, "two", idempotency_key="k")
    assert info.value.status_code == 422


def test_concurrent_sends_with_one_key_store_one_message(client, fake):
    channel = client.open_dm_channel("user_1")
    threads = [threading.Thread(target=client.send_message, args=(channel, "hi"),
                                kwargs={"idempotency_key": "same"}) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake.sent_messages(channel)) == 1


def test_pagination_over_real_http(client, fake):
    channel = client.open_dm_channel("user_1")
    for i in range(7):
        client.send_message(channel, f"m{i}", idempotency_key=f"k{i}")
    got = list(client.iter_messages(channel, page_size=3))
    assert [m["content"] for m, _ in got] == [f"m{i}" for i in range(7)]
    cursors = [c for _, c in got]
    assert len(set(cursors)) == 3  # three pages, one cursor each
    assert fake.requests.count(("GET", "/messages")) == 3
    page = client.list_messages(channel, after=cursors[-1])
    assert (page.data, page.end_cursor, page.has_next_page) == ([], None, False)
    fake.member_says("user_1", "2")  # a reply after the stored cursor is the next poll's only item
    page = client.list_messages(channel, after=cursors[-1])
    assert [(m["content"], m["user"]["id"]) for m in page.data] == [("2", "user_1")]


def test_wrong_key_is_a_401(served):
    with WhopClient("wrong_key_456", base_url=served) as bad:
        with pytest.raises(WhopAPIError) as info:
            bad.open_dm_channel("user_1")
    assert info.value.status_code == 401
    assert "wrong_key_456" not in str(info.value)
    assert str(info.value) == "POST /dm_channels failed: HTTP 401 Unauthorized: invalid or missing API key"


def test_injected_failure_is_retried_by_the_client(client, fake):
    channel = client.open_dm_channel("user_1")
    fake.fail_next(1, 500)
    assert client.send_message(channel, "hi", idempotency_key="k")["content"] == "hi"
    assert fake.requests.count(("POST", "/messages")) == 2
    assert len(fake.sent_messages()) == 1 and len(client.sleeps) == 1


def test_injected_429_with_retry_after(client, fake):
    fake.fail_next(2, 429, {"Retry-After": "3"})
    assert client.account_owner_id("biz_1") == "user_owner"
    assert client.sleeps == [3.0, 3.0]


def test_owner_and_notifications(client, fake):
    assert client.account_owner_id("biz_1") == "user_owner"
    assert client.get_account("me")["id"] == "biz_1"  # the API key's own account
    client.post_notification("Member needs help", "Ann asked", account_id="biz_1", user_ids=["user_owner"],
                             idempotency_key="wf-1-n")
    client.post_notification("Member needs help", "Ann asked", account_id="biz_1", user_ids=["user_owner"],
                             idempotency_key="wf-1-n")  # a resend: deduplicated by its key
    client.post_notification("Office hours", "at 5", experience_id="exp_1")
    assert [(n.get("account_id"), n.get("experience_id"), n["title"], n["user_ids"], n["idempotency_key"])
            for n in fake.notifications] == [("biz_1", None, "Member needs help", ["user_owner"], "wf-1-n"),
                                             (None, "exp_1", "Office hours", None, None)]
    with pytest.raises(WhopAPIError) as info:
        client.get_account("biz_unknown")
    assert info.value.status_code == 404


@pytest.mark.parametrize("method, path, kwargs, status", [
    ("POST", "/messages", {"json": {"channel_id": "feed_nope", "content": "x"}}, 404),
    ("POST", "/messages", {"json": {"channel_id": "feed_nope"}}, 422),
    ("POST", "/messages", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400),
    ("POST", "/dm_channels", {"json": {"with_user_ids": []}}, 422),
    ("POST", "/notifications", {"json": {"account_id": "biz_1"}}, 422),
    ("POST", "/notifications", {"json": {"title": "t", "content": "c"}}, 422),
    ("POST", "/notifications", {"json": {"title": "t", "content": "c", "account_id": "biz_1",
                                         "experience_id": "exp_1"}}, 422),
    # the older generation's naming is refused: only webhooks still carry it
    ("POST", "/notifications", {"json": {"title": "t", "content": "c", "company_id": "biz_1"}}, 400),
    ("POST", "/dm_channels", {"json": {"with_user_ids": ["user_1"], "company_id": "biz_1"}}, 400),
    ("GET", "/companies/biz_1", {}, 404),
    ("POST", "/accounts/biz_1", {}, 405),
    ("GET", "/messages", {}, 400),
    ("GET", "/messages", {"params": {"channel_id": "feed_nope"}}, 404),
    ("GET", "/nowhere", {}, 404),
    ("DELETE", "/messages", {}, 405),
])
def test_bad_input_gets_json_errors(served, method, path, kwargs, status):
    response = raw(served, method, path, **kwargs)
    assert response.status_code == status
    assert response.json()["error"]["message"]


def test_bad_cursor_and_page_size(served, fake):
    channel = fake.channel_for("user_1")
    assert raw(served, "GET", "/messages", params={"channel_id": channel, "after": "zzz"}).status_code == 400
    assert raw(served, "GET", "/messages", params={"channel_id": channel, "first": "0"}).status_code == 400


def test_api_v1_prefix_is_accepted(served):
    with WhopClient(KEY, base_url=served + "/api/v1") as c:
        assert c.account_owner_id("biz_1") == "user_owner"


def test_member_says_returns_a_chat_message_envelope(client, fake):
    envelope = fake.member_says("user_1", "I want 2", username="ann")
    assert set(envelope) == {"id", "api_version", "type", "timestamp", "account_id", "data"}
    assert envelope["id"].startswith("evt_")
    assert (envelope["type"], envelope["api_version"], envelope["account_id"]) == \
        ("chat.message.created", "v1", "biz_1")
    channel, message = envelope["data"]["channel"], envelope["data"]["message"]
    assert channel == {"id": client.open_dm_channel("user_1"), "type": "direct_message",
                       "experience_id": None}
    assert envelope["data"]["audience"] == {"type": "users", "user_ids": ["user_1", "user_bot"]}
    assert (message["content"], message["message_type"]) == ("I want 2", "regular")
    assert message["user"] == {"id": "user_1", "username": "ann", "name": "ann"}
    assert fake.sent_messages() == []  # the member's words are not the bot's
    event = to_event(parse(json.dumps(envelope).encode()), bot_user_id="user_bot", route=lambda _: "exp_1")
    assert event == MessageReceived(experience_id="exp_1", user_id="user_1", message_id=message["id"],
                                    text="I want 2", channel_id=channel["id"])


@pytest.mark.parametrize("kind", ["system", "automated"])
def test_a_system_message_is_in_the_channel_but_no_reply(client, fake, kind):
    envelope = fake.system_message("user_1", "Ann joined", message_type=kind)
    channel = client.open_dm_channel("user_1")
    assert [(m["content"], m["message_type"]) for m in client.list_messages(channel).data] == [
        ("Ann joined", kind)]
    event = to_event(parse(json.dumps(envelope).encode()), bot_user_id="user_bot", route=lambda _: "exp_1")
    assert event == Ignored(f"a {kind} message, not a member's reply")


@pytest.mark.parametrize("shape, envelope_keys", [
    ("current", {"id", "api_version", "type", "timestamp", "account_id", "data"}),
    ("nested", {"id", "api_version", "type", "timestamp", "company_id", "data"}),
    ("v5", {"api_version", "action", "data"}),
])
def test_memberships_parse_in_every_shape(fake, shape, envelope_keys):
    joined = fake.membership_activated("user_1", "prod_1", "biz_1", shape=shape)
    ended = fake.membership_deactivated("user_1", "prod_1", "biz_1", shape=shape)
    assert set(joined) == envelope_keys and set(ended) == envelope_keys
    seen = []

    def route(ids):
        seen.append(ids)
        return "exp_1"

    events = [to_event(parse(json.dumps(e).encode()), bot_user_id=None, route=route) for e in (joined, ended)]
    assert [type(e) for e in events] == [MemberJoined, MembershipEnded]
    company = None if shape == "v5" else "biz_1"  # v5 names no company
    assert {(e.user_id, e.product_id, e.company_id) for e in events} == {("user_1", "prod_1", company)}


def test_only_the_nested_shape_names_the_member(fake):
    nested = fake.membership_activated("user_1", "prod_1", shape="nested", name="Ada")
    event = to_event(parse(json.dumps(nested).encode()), bot_user_id=None, route=lambda _: "exp_1")
    assert event.user_name == "Ada"
    with pytest.raises(ValueError, match="only the older nested shape names the member"):
        fake.membership_activated("user_1", "prod_1", name="Ada")
    with pytest.raises(ValueError, match="shape must be one of current, nested, v5"):
        fake.membership_activated("user_1", "prod_1", shape="v9")


@pytest.mark.parametrize("shape", ["current", "nested", "v5"])
def test_a_membership_without_a_user_is_ignored(fake, shape):
    envelope = fake.membership_activated(None, "prod_1", "biz_1", shape=shape)
    event = to_event(parse(json.dumps(envelope).encode()), bot_user_id=None, route=lambda _: "exp_1")
    assert event == Ignored("membership without a user (bought by a business, or unclaimed)")


def test_sign_verifies_with_standardwebhooks_and_our_verifier(fake):
    standardwebhooks = pytest.importorskip("standardwebhooks")
    body = json.dumps(fake.member_says("user_1", "hello")).encode()
    now = int(time.time())
    headers = fake.sign(body, SECRET, "msg_abc", now)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-signature"].startswith("v1,")
    assert standardwebhooks.Webhook(SECRET.encode()).verify(body, headers)["type"] == "chat.message.created"
    assert verify(headers, body, SECRET, now=now) == "msg_abc"
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET.encode()).verify(body + b" ", headers)


def test_stop_shuts_the_server(fake):
    base_url, stop = serve_in_thread(fake)
    with WhopClient(KEY, base_url=base_url, max_retries=0) as c:
        assert c.account_owner_id("biz_1") == "user_owner"  # leaves a keep-alive connection open
        stop()
        with pytest.raises(RetryLater, match="connection error"):
            c.get_account("biz_1")
