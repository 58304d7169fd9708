"""The fake's `/_fake/...` control routes: member actions delivered as signed webhooks, reads, faults."""

from __future__ import annotations

import json

import httpx
import pytest

from whopfunnel_plugin.clock import FixedClock
from whopfunnel_plugin.events import MemberJoined
from whopfunnel_plugin.whop.fake import FakeWhop
from whopfunnel_plugin.whop.fake_control import WebhookSender
from whopfunnel_plugin.whop.webhooks import Ignored, parse, to_event, verify

KEY = "fake_sk_control"
SECRET = "ws_fake_control_secret"


class Receiver:
    """A webhook endpoint that verifies each delivery as whopfunnel serve would, and keeps it."""

    def __init__(self, clock):
        self.clock = clock
        self.events = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        now = self.clock.now().timestamp()
        verify(request.headers, request.content, SECRET, now=now)
        event = to_event(parse(request.content), bot_user_id="user_bot", route=lambda _: "exp_fake")
        self.events.append(event)
        return httpx.Response(200, json={"status": "ignored" if isinstance(event, Ignored) else "ok"})


@pytest.fixture
def world(clock):
    receiver = Receiver(clock)
    sender = WebhookSender("http://serve.test/webhooks/whop", SECRET,
                           transport=httpx.MockTransport(receiver), clock=clock)
    fake = FakeWhop(KEY, company_id="biz_fake", clock=clock, deliver=sender)
    http = httpx.Client(transport=httpx.WSGITransport(app=fake), base_url="http://whop.test")
    yield fake, receiver, http
    http.close()
    sender.close()


def test_join_say_system_and_leave_arrive_as_signed_webhooks(world):
    fake, receiver, http = world
    joined = http.post("/_fake/join", json={"user_id": "user_ada", "product_id": "prod_fake"})
    assert joined.status_code == 200
    assert joined.json()["delivery"] == {"status": 200, "answer": {"status": "ok"}}
    assert joined.json()["webhook"]["type"] == "membership.activated"
    http.post("/_fake/say", json={"user_id": "user_ada", "text": "1", "username": "ada"})
    http.post("/_fake/system", json={"user_id": "user_ada", "text": "Ada joined"})
    http.post("/_fake/join", json={"user_id": None, "product_id": "prod_fake"})  # an unclaimed one
    http.post("/_fake/leave", json={"user_id": "user_ada", "product_id": "prod_fake"})
    assert [type(e).__name__ for e in receiver.events] == [
        "MemberJoined", "MessageReceived", "Ignored", "Ignored", "MembershipEnded"]
    assert receiver.events[0] == MemberJoined(experience_id="exp_fake", user_id="user_ada",
                                              company_id="biz_fake", product_id="prod_fake")
    assert receiver.events[1].text == "1"
    assert receiver.events[2] == Ignored("a system message, not a member's reply")


def test_without_a_webhook_url_the_action_only_answers_the_webhook(clock):
    fake = FakeWhop(KEY, clock=clock)
    with httpx.Client(transport=httpx.WSGITransport(app=fake), base_url="http://whop.test") as http:
        answer = http.post("/_fake/say", json={"user_id": "user_ada", "text": "hi"}).json()
    assert answer["delivery"] is None
    assert answer["webhook"]["data"]["message"]["content"] == "hi"


def test_reads_show_what_the_bot_did(world):
    fake, _, http = world
    channel = fake.channel_for("user_ada")
    headers = {"Authorization": f"Bearer {KEY}", "Idempotency-Key": "wf-1"}
    http.post("/api/v1/messages", json={"channel_id": channel, "content": "Welcome!"}, headers=headers)
    sent = http.get("/_fake/sent").json()["data"]
    assert [(m["content"], m["channel_id"], m["idempotency_key"]) for m in sent] == [
        ("Welcome!", channel, "wf-1")]
    (seen,) = http.get("/_fake/requests").json()["data"]
    assert (seen["method"], seen["path"], seen["idempotency_key"], seen["status"]) == (
        "POST", "/messages", "wf-1", 200)
    assert http.get("/_fake/notifications").json() == {"data": []}
    assert KEY not in json.dumps(http.get("/_fake/requests").json())


def test_faults_can_be_switched_over_http(world):
    fake, _, http = world
    assert http.post("/_fake/faults", json={"fail_next": {"n": 1, "status": 503}}).json() == {"status": "ok"}
    headers = {"Authorization": f"Bearer {KEY}"}
    assert http.get("/api/v1/accounts/me", headers=headers).status_code == 503
    http.post("/_fake/faults", json={"limit_rate": {"requests": 1, "per": 60}})
    assert [http.get("/api/v1/accounts/me", headers=headers).status_code for _ in range(2)] == [200, 429]
    http.post("/_fake/faults", json={"clear": True})
    assert http.get("/api/v1/accounts/me", headers=headers).status_code == 200


@pytest.mark.parametrize("method, path, body, status, message", [
    ("POST", "/_fake/join", {"product_id": "prod_fake"}, 400,
     "user_id is required (null: a membership without a user)"),
    ("POST", "/_fake/say", {"user_id": "user_ada", "text": 5}, 400, "text must be a non-empty string"),
    ("POST", "/_fake/join", {"user_id": "u", "product_id": "p", "shape": "v9"}, 400,
     "shape must be one of current, nested, v5, not 'v9'"),
    ("POST", "/_fake/faults", {"explode": True}, 400, "unknown fault mode explode"),
    ("POST", "/_fake/faults", {"slow": {"secs": 1}}, 400, "slow() got an unexpected keyword argument 'secs'"),
    ("POST", "/_fake/faults", {"lose_next": {"status": 201}}, 400, "a lost answer is a 5xx or a dropped "
                                                                    "connection"),
    ("GET", "/_fake/join", None, 405, "use POST on /_fake/join"),
    ("POST", "/_fake/sent", {}, 405, "use GET on /_fake/sent"),
    ("GET", "/_fake/nope", None, 404, "no control route /_fake/nope; see whopfunnel fake-whop --help"),
])
def test_bad_control_requests_are_one_clear_line(world, method, path, body, status, message):
    _, _, http = world
    answer = http.request(method, path, json=body)
    assert (answer.status_code, answer.json()["error"]["message"]) == (status, message)


def test_a_body_that_is_not_an_object(world):
    _, _, http = world
    answer = http.post("/_fake/say", content=b"[1]")
    assert (answer.status_code, answer.json()["error"]["message"]) == (400, "the body must be a JSON object")


@pytest.fixture
def clock():
    return FixedClock()
