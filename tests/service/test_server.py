"""The webhook WSGI app called in-process: status codes, dedupe, membership ends, DM routing."""

from __future__ import annotations

import io
import json

import httpx
import pytest

from whopfunnel_plugin import hookimpl
from whopfunnel_plugin.service.server import WebhookApp
from whopfunnel_plugin.whop.fake import FakeWhop

SECRET = "ws_server_test_secret"
MIB = 1024 * 1024
WELCOME = "Welcome, friend! What brings you here?\n\n1. Trading & Investing\n2. Just exploring for now"
ROUTES = ["{product: prod_1, experience: exp_1, funnel: onboarding}",
          "{product: prod_2, experience: exp_2, funnel: onboarding}"]


class Ends:
    def __init__(self):
        self.reasons = []

    @hookimpl
    def on_conversation_end(self, conversation):
        self.reasons.append((conversation.experience_id, conversation.status,
                             conversation.end_reason))


@pytest.fixture
def world(make_pm, fake, clock):
    pm = make_pm(routes=ROUTES)
    ends = Ends()
    pm.register(ends, name="ends")
    commits = []
    app = WebhookApp(pm, secret=SECRET, bot_user_id=fake.bot_user["id"],
                     on_commit=lambda: commits.append(1))
    client = httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://wf.test")
    try:
        yield app, client, pm, ends, commits
    finally:
        client.close()
        pm.unregister(name="ends")


def post(client, clock, envelope=None, *, body=None, msg_id=None, secret=SECRET, age=0):
    body = json.dumps(envelope).encode() if body is None else body
    headers = FakeWhop.sign(body, secret, msg_id or envelope["id"],
                            int(clock.now().timestamp()) - age)
    return client.post("/webhooks/whop", content=body, headers=headers)


def call(app, environ):
    """Call the app by hand; returns (status code, headers, JSON answer)."""
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = int(status.split()[0]), dict(headers)

    body = b"".join(app({"REQUEST_METHOD": "POST", "PATH_INFO": "/webhooks/whop",
                         "wsgi.input": io.BytesIO(b""), **environ}, start_response))
    return seen["status"], seen["headers"], json.loads(body)


class Untouched:
    """A request body that records whether anyone read it."""

    def __init__(self):
        self.reads = []

    def read(self, *args):
        self.reads.append(args)
        return b""


def dms(fake, user="user_1"):
    return [m["content"] for m in fake.sent_messages(fake.channel_for(user, "biz_1"))]


def conversations(pm, user="user_1"):
    c = pm.runtime.store.models.conversation
    return [(r.experience_id, r.status, r.end_reason, r.block)
            for r in c.select().where(c.user_id == user).order_by(c.id)]


# -- refusals -------------------------------------------------------------------------------


def test_a_bad_signature_is_refused_with_401(world, fake, clock):
    _, client, pm, *_ = world
    envelope = fake.membership_activated("user_1", "prod_1", "biz_1")
    wrong = post(client, clock, envelope, secret="ws_someone_else")
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "no webhook signature matches"}
    stale = post(client, clock, envelope, age=301)
    assert stale.status_code == 401
    assert "more than the 300 s tolerance" in stale.json()["error"]
    unsigned = client.post("/webhooks/whop", content=json.dumps(envelope).encode())
    assert unsigned.status_code == 401
    assert conversations(pm) == []
    assert fake.sent_messages() == []
    # A refused delivery is not remembered: the genuine one with the same id still counts.
    assert post(client, clock, envelope).json() == {"status": "started"}


def test_a_malformed_body_is_refused_with_400(world, fake, clock):
    _, client, pm, *_ = world
    answer = post(client, clock, body=b"{not json", msg_id="evt_bad")
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("body is not valid JSON")
    bad_user = {"id": "evt_baduser", "type": "membership.activated",
                "data": {"user_id": 7, "product_id": "prod_1"}}
    answer = post(client, clock, bad_user)
    assert (answer.status_code, answer.json()) == (400, {"error": "data.user_id must be a string, "
                                                                  "not number"})
    assert conversations(pm) == []


def test_a_membership_without_a_user_is_acknowledged_and_ignored(world, fake, clock, caplog):
    # Bought by another business, or unclaimed: a 4xx would make Whop redeliver for days.
    _, client, pm, *_ = world
    caplog.set_level("INFO", logger="whopfunnel.webhooks")
    envelope = fake.membership_activated(None, "prod_1", "biz_1")
    assert envelope["data"]["user_id"] is None
    answer = post(client, clock, envelope)
    reason = "membership without a user (bought by a business, or unclaimed)"
    assert (answer.status_code, answer.json()) == (200, {"status": "ignored", "reason": reason})
    assert f"webhook membership.activated -: 200 ignored ({reason})" in caplog.text
    assert conversations(pm) == [] and fake.sent_messages() == []
    assert post(client, clock, envelope).json() == {"status": "duplicate"}


def test_system_and_automated_messages_are_no_replies(world, fake, clock):
    _, client, pm, *_ = world
    post(client, clock, fake.membership_activated("user_1", "prod_1", "biz_1"))
    for kind in ("system", "automated"):
        answer = post(client, clock, fake.system_message("user_1", "2", message_type=kind,
                                                         company_id="biz_1"))
        assert answer.json() == {"status": "ignored",
                                 "reason": f"a {kind} message, not a member's reply"}
    assert conversations(pm) == [("exp_1", "active", None, "welcome")]
    assert post(client, clock, fake.member_says("user_1", "2", company_id="biz_1")).json() == {
        "status": "ended"}  # the member's own "2" is a reply: "Just exploring" ends the funnel


def test_a_body_over_one_mib_is_refused_unread(world):
    app, *_ = world
    body = Untouched()
    status, _, answer = call(app, {"CONTENT_LENGTH": str(MIB + 1), "wsgi.input": body})
    assert status == 413
    assert str(MIB) in answer["error"]
    assert body.reads == []


def test_a_body_of_exactly_one_mib_is_accepted(world, clock):
    _, client, *_ = world
    doc = json.dumps({"id": "evt_pad", "type": "payment.succeeded", "data": {}}).encode()
    body = doc + b" " * (MIB - len(doc))
    answer = post(client, clock, body=body, msg_id="evt_pad")
    assert (answer.status_code, answer.json()["status"]) == (200, "ignored")


def test_a_negative_content_length_is_refused_unread(world):
    app, *_ = world
    body = Untouched()
    status, _, _ = call(app, {"CONTENT_LENGTH": "-1", "wsgi.input": body})
    assert (status, body.reads) == (400, [])


def test_wrong_method_and_unknown_path(world):
    app, client, *_ = world
    get = client.get("/webhooks/whop")
    assert (get.status_code, get.headers["allow"]) == (405, "POST")
    health = client.post("/healthz")
    assert (health.status_code, health.headers["allow"]) == (405, "GET, HEAD")
    for path in ("/nope", "/webhooks/whop/", "/webhooks"):
        missing = client.post(path, content=b"{}")
        assert missing.status_code == 404
        assert missing.json() == {"error": f"no route {path}"}


def test_healthz(world):
    _, client, *_ = world
    answer = client.get("/healthz")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})
    assert client.head("/healthz").status_code == 200


# -- deliveries -------------------------------------------------------------------------------


def test_duplicate_and_unknown_events_are_acknowledged(world, fake, clock):
    _, client, pm, _, commits = world
    envelope = fake.membership_activated("user_1", "prod_1", "biz_1")
    first = post(client, clock, envelope)
    assert (first.status_code, first.json()) == (200, {"status": "started"})
    clock.advance(seconds=30)  # Whop's retry: same id, fresh timestamp and signature
    again = post(client, clock, envelope)
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert dms(fake) == [WELCOME]
    assert len(conversations(pm)) == 1

    unknown = {"id": "evt_pay", "type": "payment.succeeded", "data": {"id": "pay_1"}}
    answer = post(client, clock, unknown)
    assert (answer.status_code, answer.json()) == (
        200, {"status": "ignored", "reason": "unknown event type payment.succeeded"})
    assert post(client, clock, unknown).json() == {"status": "duplicate"}
    unrouted = post(client, clock, fake.membership_activated("user_2", "prod_9", "biz_1"))
    assert unrouted.json() == {"status": "ignored", "reason": "no route for product prod_9"}
    assert conversations(pm, "user_2") == []
    assert len(commits) == 1  # only the delivery that changed something woke the sender


def test_membership_deactivated_ends_the_conversation(world, fake, clock):
    _, client, pm, ends, _ = world
    post(client, clock, fake.membership_activated("user_1", "prod_1", "biz_1"))
    answer = post(client, clock, fake.membership_deactivated("user_1", "prod_1", "biz_1"))
    assert (answer.status_code, answer.json()) == (200, {"status": "ended"})
    assert conversations(pm) == [("exp_1", "abandoned", "membership_ended", "welcome")]
    assert pm.runtime.store.models.conversation.get().active_user is None
    assert ends.reasons == [("exp_1", "abandoned", "membership_ended")]
    assert dms(fake) == [WELCOME]  # no goodbye to someone who left
    again = post(client, clock, fake.membership_deactivated("user_1", "prod_1", "biz_1"))
    assert again.json() == {"status": "inactive"}
    rejoined = post(client, clock, fake.membership_activated("user_1", "prod_1", "biz_1"))
    assert rejoined.json() == {"status": "started"}
    assert [c[1] for c in conversations(pm)] == ["abandoned", "active"]


def test_a_failed_delivery_is_not_remembered_so_the_retry_is_processed(world, fake, clock):
    _, client, pm, *_ = world
    post(client, clock, fake.membership_activated("user_1", "prod_1", "biz_1"))
    host = pm.runtime.host
    real_end = host.end

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    host.end = broken
    envelope = fake.membership_deactivated("user_1", "prod_1", "biz_1")
    try:
        failed = post(client, clock, envelope)
    finally:
        host.end = real_end
    assert (failed.status_code, failed.json()) == (500, {"error": "internal error; retry later"})
    assert post(client, clock, envelope).json() == {"status": "ended"}
    assert conversations(pm)[0][2] == "membership_ended"


def test_a_dm_goes_to_the_conversation_bound_to_its_channel(world, fake, clock):
    _, client, pm, *_ = world
    post(client, clock, fake.membership_activated("user_1", "prod_1", "biz_1"))
    fake.fail_next(1, status=503)  # exp_2's welcome waits: no channel bound there yet
    post(client, clock, fake.membership_activated("user_1", "prod_2", "biz_1"))
    models = pm.runtime.store.models
    c = models.conversation
    channel = fake.channel_for("user_1", "biz_1")
    assert [(r.experience_id, r.channel_id) for r in c.select().order_by(c.id)] == [
        ("exp_1", channel), ("exp_2", None)]

    answer = post(client, clock, fake.member_says("user_1", "1", company_id="biz_1"))
    assert answer.json() == {"status": "advanced"}
    assert conversations(pm) == [("exp_1", "active", None, "email"),
                               ("exp_2", "active", None, "welcome")]
    i = models.interaction
    assert i.select().where(i.experience_id == "exp_2").count() == 0
    assert dms(fake)[-2:] == ["Here is the free guide: https://example.com/guide",
                              "What's the best email to send it to?"]

    # A DM from a channel bound to neither conversation is not guessed into one of them.
    stranger = fake.member_says("user_1", "2", company_id="biz_1")
    stranger["data"]["channel"]["id"] = "feed_elsewhere"
    answer = post(client, clock, stranger)
    assert answer.json() == {"status": "ignored", "reason": "no route for company biz_1"}
    assert [r[3] for r in conversations(pm)] == ["email", "welcome"]


def test_dms_of_the_bot_and_of_strangers_are_ignored(world, fake, clock):
    _, client, pm, *_ = world
    post(client, clock, fake.membership_activated("user_1", "prod_1", "biz_1"))
    own = fake.member_says("user_1", "1", company_id="biz_1")
    own["data"]["message"]["user"] = dict(fake.bot_user)
    assert post(client, clock, own).json() == {"status": "ignored",
                                               "reason": "the bot's own message"}
    stranger = post(client, clock, fake.member_says("user_9", "1", company_id="biz_1"))
    assert stranger.json() == {"status": "ignored", "reason": "no route for company biz_1"}
    assert conversations(pm) == [("exp_1", "active", None, "welcome")]
    m = pm.runtime.store.models.message
    assert m.select().where(m.direction == "in").count() == 0


def test_a_join_redelivered_after_the_funnel_ended_is_a_no_op(world, fake, clock):
    _, client, pm, *_ = world
    envelope = fake.membership_activated("user_1", "prod_1", "biz_1")
    # the first delivery is processed, but our 200 never reaches Whop (as if we were killed
    # before answering): the dedupe row was committed with the join, not after it
    pm.hook.on_member_join(event=replace_event(envelope, fake))
    assert dms(fake) == [WELCOME]
    post(client, clock, fake.member_says("user_1", "2", company_id="biz_1"))  # ends it
    again = post(client, clock, envelope)
    assert again.json() == {"status": "duplicate"}
    assert pm.runtime.store.models.conversation.select().count() == 1
    assert dms(fake)[-1] == "Thanks for stopping by!"


def replace_event(envelope, fake):
    from whopfunnel_plugin import MemberJoined

    return MemberJoined(experience_id="exp_1", user_id="user_1", company_id="biz_1",
                        product_id="prod_1", delivery_id=envelope["id"])


def test_webhook_joins_start_the_routed_funnel_even_with_experience_routes(make_pm, fake, clock):
    # the experience-only route listed first must not override the product's route
    pm = make_pm(routes=["{experience: exp_1, funnel: onboarding}",
                         "{product: prod_q, experience: exp_1, funnel: qualification}"])
    app = WebhookApp(pm, secret=SECRET, bot_user_id=fake.bot_user["id"])
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://wf.test") as client:
        post(client, clock, fake.membership_activated("user_1", "prod_q", "biz_1"))
    assert [(c.experience_id, c.funnel_id)
            for c in pm.runtime.store.tenant("exp_1").conversations()] == [("exp_1", "qualification")]


def test_serve_refuses_routes_without_an_experience(make_pm):
    from whopfunnel_plugin.errors import ConfigError
    from whopfunnel_plugin.service.server import wire

    pm = make_pm(routes=["{product: prod_1, funnel: onboarding}"])
    with pytest.raises(ConfigError) as info:
        wire(pm, {"WHOP_WEBHOOK_SECRET": SECRET})
    assert str(info.value).endswith("plugin.yaml:4:31: route 1 has no experience: webhook joins "
                                    "need it to know the tenant")
