"""Webhook signatures (Standard Webhooks with Whop's key rule, legacy) and payload parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from whopfunnel_plugin.errors import WhopFunnelError
from whopfunnel_plugin.events import MemberJoined, MembershipEnded, MessageReceived
from whopfunnel_plugin.whop.webhooks import (
    Envelope,
    Ignored,
    PayloadError,
    PayloadTooLarge,
    SignatureError,
    WebhookError,
    parse,
    to_event,
    verify,
)

SECRET = "ws_test_secret"
SECRET_BYTES = SECRET.encode()
NOW = 1_772_366_400  # 2026-03-01 12:00:00 UTC
BODY = b'{"id":"evt_1","api_version":"v1","type":"membership.activated","data":{"user_id":"user_1"}}'
ROUTES = {"prod_a": "exp_a", "biz_a": "exp_biz"}


def route(info):
    return ROUTES.get(info["product_id"]) or ROUTES.get(info["company_id"])


def standard_headers(body=BODY, *, secret=SECRET_BYTES, ts=NOW, msg_id="msg_1"):
    """Sign with the official library; bytes secret = the raw key, as Whop uses it."""
    sig = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, tz=timezone.utc), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig}


def legacy_header(body=BODY, *, secret=SECRET, ts=NOW):
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Whop-Signature": f"t={ts},v1={digest}"}, digest


def event(doc, *, bot_user_id="user_bot"):
    return to_event(parse(json.dumps(doc).encode()), bot_user_id=bot_user_id, route=route)


# -- errors -------------------------------------------------------------------------------


def test_errors_form_a_tree_with_http_statuses():
    assert issubclass(WebhookError, WhopFunnelError)
    for error, status in ((SignatureError, 401), (PayloadError, 400), (PayloadTooLarge, 413)):
        assert issubclass(error, WebhookError) and error.status == status


# -- Standard Webhooks --------------------------------------------------------------------


def test_library_signature_with_the_raw_secret_bytes_is_accepted():
    assert verify(standard_headers(), BODY, SECRET, now=NOW) == "msg_1"


def test_header_names_are_case_insensitive():
    headers = {k.title(): v for k, v in standard_headers().items()}
    assert "Webhook-Signature" in headers
    assert verify(headers, BODY, SECRET, now=NOW) == "msg_1"


def test_signature_with_the_base64_decoded_key_is_rejected():
    # What the library does with a str secret: strip whsec_, base64-decode the rest.
    decoded_key = base64.b64decode("test_secret" + "==")
    assert Webhook("whsec_test_secret")._whsecret == decoded_key
    headers = standard_headers(secret=decoded_key)
    with pytest.raises(SignatureError, match="no webhook signature matches"):
        verify(headers, BODY, SECRET, now=NOW)


def test_the_library_agrees_with_our_accepted_vector():
    now = int(time.time())  # the library's verify reads the wall clock itself
    headers = standard_headers(ts=now)
    assert Webhook(SECRET_BYTES).verify(BODY, headers) == json.loads(BODY)
    assert verify(headers, BODY, SECRET, now=now) == "msg_1"


@pytest.mark.parametrize(("offset", "message"), [
    (-412, "webhook timestamp is 412 s old; more than the 300 s tolerance"),
    (301, "webhook timestamp is 301 s in the future; more than the 300 s tolerance"),
])
def test_stale_and_future_timestamps_are_rejected(offset, message):
    headers = standard_headers(ts=NOW + offset)
    with pytest.raises(SignatureError) as info:
        verify(headers, BODY, SECRET, now=NOW)
    assert str(info.value) == message
    assert info.value.status == 401


def test_timestamps_at_the_tolerance_edge_are_accepted():
    for offset in (-300, 300):
        assert verify(standard_headers(ts=NOW + offset), BODY, SECRET, now=NOW) == "msg_1"
    assert verify(standard_headers(ts=NOW - 500), BODY, SECRET, now=NOW, tolerance=600) == "msg_1"


@pytest.mark.parametrize("value", ["1772366400.5", "abc", "-1772366400", " 1772366400", "１２"])
def test_non_integer_timestamps_are_rejected(value):
    headers = standard_headers() | {"webhook-timestamp": value}
    with pytest.raises(SignatureError, match="webhook-timestamp"):
        verify(headers, BODY, SECRET, now=NOW)


def test_tampered_body_is_rejected():
    with pytest.raises(SignatureError, match="no webhook signature matches"):
        verify(standard_headers(), BODY.replace(b"user_1", b"user_2"), SECRET, now=NOW)


def test_tampered_id_is_rejected():
    headers = standard_headers() | {"webhook-id": "msg_2"}
    with pytest.raises(SignatureError, match="no webhook signature matches"):
        verify(headers, BODY, SECRET, now=NOW)


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_each_missing_header_is_named(name):
    headers = standard_headers()
    del headers[name]
    with pytest.raises(SignatureError) as info:
        verify(headers, BODY, SECRET, now=NOW)
    assert str(info.value) == f"missing {name} header"


def test_no_headers_at_all():
    with pytest.raises(SignatureError) as info:
        verify({}, BODY, SECRET, now=NOW)
    assert str(info.value) == "missing webhook-id and webhook-timestamp and webhook-signature headers"


def test_any_matching_v1_entry_is_accepted_and_other_versions_ignored():
    headers = standard_headers()
    good = headers["webhook-signature"]
    wrong = standard_headers(secret=b"ws_other")["webhook-signature"]
    headers["webhook-signature"] = f"v1a,{good.split(',')[1]} {wrong} v1,!!notbase64 {good}"
    assert verify(headers, BODY, SECRET, now=NOW) == "msg_1"
    # the right digest under another version prefix does not count
    headers["webhook-signature"] = f"v2,{good.split(',')[1]}"
    with pytest.raises(SignatureError, match="no v1 entry"):
        verify(headers, BODY, SECRET, now=NOW)


def test_error_messages_never_show_the_secret_or_the_body():
    headers = standard_headers(secret=b"ws_other")
    with pytest.raises(SignatureError) as info:
        verify(headers, BODY, SECRET, now=NOW)
    text = str(info.value)
    assert SECRET not in text and "user_1" not in text and "\n" not in text


def test_overlong_or_non_ascii_ids_are_rejected():
    with pytest.raises(SignatureError, match="longer than 191"):
        verify(standard_headers(msg_id="m" * 192), BODY, SECRET, now=NOW)
    with pytest.raises(SignatureError, match="webhook-id header is not printable ASCII"):
        verify(standard_headers() | {"webhook-id": "msg_é"}, BODY, SECRET, now=NOW)


def test_an_empty_secret_never_verifies():
    with pytest.raises(SignatureError, match="secret is empty"):
        verify(standard_headers(), BODY, "", now=NOW)


# -- legacy x-whop-signature --------------------------------------------------------------


def test_legacy_signature_is_accepted_with_a_derived_delivery_id():
    headers, digest = legacy_header()
    assert verify(headers, BODY, SECRET, now=NOW) == f"legacy:{NOW}:{digest[:16]}"


def test_legacy_bad_signature_is_rejected():
    headers, _ = legacy_header(secret="ws_other")
    with pytest.raises(SignatureError, match="x-whop-signature does not match"):
        verify(headers, BODY, SECRET, now=NOW)
    headers, _ = legacy_header()
    with pytest.raises(SignatureError, match="x-whop-signature does not match"):
        verify(headers, BODY + b" ", SECRET, now=NOW)


def test_legacy_stale_signature_is_rejected():
    headers, _ = legacy_header(ts=NOW - 412)
    with pytest.raises(SignatureError) as info:
        verify(headers, BODY, SECRET, now=NOW)
    assert str(info.value) == "webhook timestamp is 412 s old; more than the 300 s tolerance"


@pytest.mark.parametrize("value", ["garbage", f"t={NOW}", "v1=abcd", f"t=soon,v1={'0' * 64}"])
def test_legacy_malformed_header_is_rejected(value):
    with pytest.raises(SignatureError, match="x-whop-signature"):
        verify({"x-whop-signature": value}, BODY, SECRET, now=NOW)


def test_legacy_is_not_used_when_standard_headers_are_present():
    headers, _ = legacy_header()
    headers["webhook-id"] = "msg_1"
    with pytest.raises(SignatureError, match="missing webhook-timestamp and webhook-signature headers"):
        verify(headers, BODY, SECRET, now=NOW)


# -- parse ----------------------------------------------------------------------------------


def test_parse_current_envelope():
    env = parse(b'{"id": "evt_1", "api_version": "v1", "type": "membership.activated",'
                b' "timestamp": "2026-03-01T12:00:00Z", "account_id": "biz_a", "data": {"x": 1}}')
    assert env == Envelope(id="evt_1", type="membership.activated", api_version="v1",
                           company_id="biz_a", timestamp="2026-03-01T12:00:00Z", data={"x": 1})


def test_body_over_the_limit_is_413():
    with pytest.raises(PayloadTooLarge) as info:
        parse(b" " * (2 * 1024 * 1024))
    assert info.value.status == 413
    assert str(info.value) == "body is 2097152 bytes; more than the 1048576 byte limit"
    with pytest.raises(PayloadTooLarge):
        parse(b"{}" * 6, max_bytes=10)


def test_invalid_json_is_400_with_the_position():
    with pytest.raises(PayloadError) as info:
        parse(b'{"type": "x",\n  "data": {oops}}')
    assert info.value.status == 400
    assert str(info.value) == ("body is not valid JSON: Expecting property name enclosed in double quotes"
                               " at line 2 column 12")


def test_non_utf8_body_is_400():
    with pytest.raises(PayloadError, match=r"^body is not UTF-8 \(invalid byte at offset 10\)$") as info:
        parse(b'{"type": "\xff"}')
    assert info.value.status == 400


@pytest.mark.parametrize(("body", "kind"), [(b"[1, 2]", "array"), (b'"x"', "string"), (b"3", "number"),
                                            (b"null", "null"), (b"true", "boolean")])
def test_json_that_is_not_an_object_is_400(body, kind):
    with pytest.raises(PayloadError) as info:
        parse(body)
    assert str(info.value) == f"body is a JSON {kind}, not an object"


def test_deep_nesting_and_huge_numbers_are_400_not_crashes():
    with pytest.raises(PayloadError, match="nested too deeply"):
        parse(b"[" * 100_000)
    with pytest.raises(PayloadError, match="body is not valid JSON"):
        parse(b'{"type": "x", "n": ' + b"9" * 5000 + b"}")


@pytest.mark.parametrize(("doc", "message"), [
    ({"data": {}}, "body has no type (or legacy action) field"),
    ({"type": 5}, "type must be a string, not number"),
    ({"type": "x", "data": []}, "data must be an object, not array"),
    ({"type": "x", "company_id": {"id": "biz"}}, "company_id must be a string, not object"),
    ({"type": "x", "timestamp": [1]}, "timestamp must be a string or a number, not array"),
])
def test_envelope_fields_of_the_wrong_type_are_400(doc, message):
    with pytest.raises(PayloadError) as info:
        parse(json.dumps(doc).encode())
    assert str(info.value) == message


# -- to_event: memberships ------------------------------------------------------------------


OLDER_SHAPE = {"id": "mem_1", "status": "active",
               "user": {"id": "user_1", "username": "ada", "name": "Ada"},
               "product": {"id": "prod_a", "title": "Course"},
               "company": {"id": "biz_a", "title": "Acme"}}
NEWER_SHAPE = {"id": "mem_1", "user_id": "user_1", "product_id": "prod_a", "plan_id": "plan_1",
               "account": {"id": "biz_a", "title": "Acme"}, "status": "active"}


def test_membership_activated_older_shape():
    assert event({"id": "evt_1", "api_version": "v1", "type": "membership.activated", "data": OLDER_SHAPE}) \
        == MemberJoined(experience_id="exp_a", user_id="user_1", company_id="biz_a",
                        product_id="prod_a", user_name="Ada")


def test_membership_activated_newer_shape():
    assert event({"id": "evt_1", "api_version": "v1", "type": "membership.activated", "data": NEWER_SHAPE}) \
        == MemberJoined(experience_id="exp_a", user_id="user_1", company_id="biz_a",
                        product_id="prod_a", user_name=None)


def test_membership_deactivated_both_shapes():
    expected = MembershipEnded(experience_id="exp_a", user_id="user_1", company_id="biz_a",
                               product_id="prod_a")
    for data in (OLDER_SHAPE, NEWER_SHAPE):
        assert event({"type": "membership.deactivated", "data": data}) == expected


def test_username_is_used_when_there_is_no_name():
    data = {"user": {"id": "user_1", "username": "ada"}, "product_id": "prod_a"}
    assert event({"type": "membership.activated", "data": data}).user_name == "ada"


def test_company_falls_back_to_the_envelope():
    data = {"user_id": "user_1", "product_id": "prod_zzz"}
    assert event({"type": "membership.activated", "company_id": "biz_a", "data": data}) \
        == MemberJoined(experience_id="exp_biz", user_id="user_1", company_id="biz_a", product_id="prod_zzz")
    assert event({"type": "membership.activated", "account_id": "biz_a", "data": data}).company_id == "biz_a"
    # data.company_id outranks the envelope
    flat = data | {"company_id": "biz_b"}
    assert event({"type": "membership.activated", "company_id": "biz_a", "data": flat}) \
        == Ignored("no route for product prod_zzz")


def test_route_receives_product_company_and_experience():
    seen = []
    parsed = parse(json.dumps({"type": "membership.activated", "data": NEWER_SHAPE}).encode())
    to_event(parsed, bot_user_id=None, route=lambda info: seen.append(info))
    assert seen == [{"product_id": "prod_a", "company_id": "biz_a", "experience_id": None}]


def test_legacy_went_valid_and_went_invalid():
    data = {"id": "mem_1", "user_id": "user_1", "product_id": "prod_a", "plan_id": "plan_1",
            "status": "active", "valid": True}
    assert event({"api_version": "v5", "action": "membership.went_valid", "data": data}) \
        == MemberJoined(experience_id="exp_a", user_id="user_1", product_id="prod_a")
    assert event({"api_version": "v5", "action": "membership.went_invalid", "data": data}) \
        == MembershipEnded(experience_id="exp_a", user_id="user_1", product_id="prod_a")


def test_unroutable_membership_is_ignored_with_the_product():
    data = {"user_id": "user_1", "product_id": "prod_x"}
    assert event({"type": "membership.activated", "data": data}) == Ignored("no route for product prod_x")
    assert event({"type": "membership.activated", "data": {"user_id": "user_1"}}) \
        == Ignored("no route for a delivery without product or company id")


@pytest.mark.parametrize("data", [{"user_id": None, "product_id": "prod_a", "account": {"id": "biz_a"}},
                                  {"product_id": "prod_a"}, {"user": {"username": "acme"}, "user_id": None}])
@pytest.mark.parametrize("kind", ["membership.activated", "membership.deactivated", "membership.went_valid"])
def test_a_membership_without_a_user_is_ignored_not_refused(data, kind):
    # Bought by another business, or unclaimed (whop-sdk types/membership.py: user_id nullable).
    assert event({"type": kind, "data": data}) == Ignored(
        "membership without a user (bought by a business, or unclaimed)")


@pytest.mark.parametrize(("data", "message"), [
    ({"user": "user_1"}, "data.user must be an object, not string"),
    ({"user_id": 7}, "data.user_id must be a string, not number"),
    ({"user": {"id": ["user_1"]}}, "data.user.id must be a string, not array"),
    ({"user_id": "u", "product": "prod_a"}, "data.product must be an object, not string"),
    ({"user_id": "u", "account": {"id": 1}}, "data.account.id must be a string, not number"),
])
def test_membership_fields_of_the_wrong_type_name_the_path(data, message):
    with pytest.raises(PayloadError) as info:
        event({"type": "membership.activated", "data": data})
    assert str(info.value) == message


def test_a_hand_built_envelope_with_list_data_is_a_payload_error():
    env = Envelope(id=None, type="membership.activated", api_version=None, company_id=None,
                   timestamp=None, data=[1])  # type: ignore[arg-type]
    with pytest.raises(PayloadError, match="data must be an object, not array"):
        to_event(env, bot_user_id=None, route=route)


# -- to_event: chat messages ------------------------------------------------------------------


def chat(channel_type="direct_message", author="user_1", **channel):
    return {"id": "evt_2", "api_version": "v1", "type": "chat.message.created", "company_id": "biz_a",
            "data": {"channel": {"id": "chan_1", "type": channel_type} | channel,
                     "message": {"id": "msg_9", "content": "2", "created_at": "2026-03-01T12:00:00Z",
                                 "user": {"id": author, "username": "ada", "name": "Ada"}},
                     "audience": {}, "reason": "dm"}}


def test_direct_message_becomes_message_received():
    assert event(chat(experience_id="exp_a")) == MessageReceived(
        experience_id="exp_a", user_id="user_1", message_id="msg_9", text="2", channel_id="chan_1")


def test_direct_message_without_experience_is_routed_by_company():
    assert event(chat()).experience_id == "exp_biz"
    doc = chat()
    doc["company_id"] = "biz_none"
    assert event(doc) == Ignored("no route for company biz_none")


def test_missing_or_null_content_is_empty_text():
    doc = chat()
    doc["data"]["message"]["content"] = None
    assert event(doc).text == ""
    del doc["data"]["message"]["content"]
    assert event(doc).text == ""


@pytest.mark.parametrize("kind", ["system", "automated", "poll_result"])
def test_only_regular_messages_are_member_replies(kind):
    doc = chat()
    doc["data"]["message"]["message_type"] = kind
    assert event(doc) == Ignored(f"a {kind} message, not a member's reply")
    del doc["data"]["message"]["user"]  # a system message need not name an author
    assert event(doc) == Ignored(f"a {kind} message, not a member's reply")
    doc["data"]["message"]["message_type"] = 3
    with pytest.raises(PayloadError, match="data.message.message_type must be a string, not number"):
        event(doc)


def test_a_regular_message_and_one_from_before_message_types_are_replies():
    doc = chat()
    doc["data"]["message"]["message_type"] = "regular"
    assert isinstance(event(doc), MessageReceived)
    doc["data"]["message"]["message_type"] = None
    assert isinstance(event(doc), MessageReceived)


@pytest.mark.parametrize("channel_type", ["chat", "support"])
def test_other_channel_types_are_ignored(channel_type):
    assert event(chat(channel_type)) == Ignored(f"not a direct message channel ({channel_type})")


def test_the_bots_own_message_is_ignored():
    assert event(chat(author="user_bot")) == Ignored("the bot's own message")
    assert isinstance(event(chat(author="user_bot"), bot_user_id=None), MessageReceived)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.pop("channel"), "missing data.channel"),
    (lambda d: d.update(channel="chan_1"), "data.channel must be an object, not string"),
    (lambda d: d["message"].update(user="user_1"), "data.message.user must be an object, not string"),
    (lambda d: d["message"].pop("user"), "missing data.message.user.id"),
    (lambda d: d["message"].pop("id"), "missing data.message.id"),
    (lambda d: d["message"].update(content=5), "data.message.content must be a string, not number"),
    (lambda d: d.update(message=[]), "data.message must be an object, not array"),
])
def test_chat_fields_of_the_wrong_type_name_the_path(mutate, message):
    doc = chat()
    mutate(doc["data"])
    with pytest.raises(PayloadError) as info:
        event(doc)
    assert str(info.value) == message


def test_unknown_event_types_are_ignored():
    assert event({"type": "payment.succeeded", "data": {}}) == Ignored("unknown event type payment.succeeded")
    assert event({"type": "x\ny"}) == Ignored("unknown event type 'x\\ny'")


# -- properties: only WebhookError subclasses escape ------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
ids = st.sampled_from(["user_1", "user_bot", "prod_a", "biz_a", "exp_a", "direct_message", "chat"])
junk = st.none() | st.integers() | st.text(max_size=4) | st.lists(ids, max_size=2)


def mostly(good, bad):
    """`good` nine times in ten: shapes close to real payloads reach the event builders."""
    return st.integers(0, 9).flatmap(lambda n: good if n else bad)


value = mostly(ids, junk)
sub = st.fixed_dictionaries({}, optional={k: value for k in ("id", "name", "username", "type",
                                                              "experience_id", "content")})
message = st.fixed_dictionaries({}, optional={"id": value, "content": value, "user": mostly(sub, value),
                                              "message_type": mostly(st.sampled_from(["regular", "system"]),
                                                                     value)})
data = st.fixed_dictionaries({}, optional={
    "user": mostly(sub, value), "user_id": value, "product": mostly(sub, value), "product_id": value,
    "company": mostly(sub, value), "company_id": value, "account": mostly(sub, value),
    "channel": mostly(sub, value), "message": mostly(message, value),
})
envelopes = st.fixed_dictionaries(
    {"type": st.sampled_from(["membership.activated", "membership.deactivated", "membership.went_valid",
                              "membership.went_invalid", "chat.message.created", "other.event"])},
    optional={"data": mostly(data, json_values), "company_id": value, "account_id": value,
              "id": value, "timestamp": value},
)


def survives(body: bytes):
    try:
        result = to_event(parse(body), bot_user_id="user_bot", route=route)
    except WebhookError:
        return
    assert isinstance(result, (MemberJoined, MembershipEnded, MessageReceived, Ignored))


@settings(max_examples=300)
@given(json_values)
def test_arbitrary_json_only_raises_webhook_errors(doc):
    survives(json.dumps(doc).encode())


@settings(max_examples=500)
@given(envelopes)
def test_arbitrary_envelopes_only_raise_webhook_errors(doc):
    survives(json.dumps(doc).encode())


@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_webhook_errors(body):
    survives(body)


header_names = st.sampled_from(["webhook-id", "Webhook-Timestamp", "webhook-signature", "x-whop-signature",
                                "X-Other"]) | st.text(max_size=10)
header_values = (st.text(max_size=40) | st.sampled_from(["v1,", "v1,AAAA", "1772366400", "t=1772366400,v1=",
                                                         "t=,v1=zz", "v1,!!", "t=1772366400,v1=00ff"]))


@settings(max_examples=500)
@given(st.dictionaries(header_names, header_values, max_size=5), st.binary(max_size=100),
       st.floats(min_value=0, max_value=4e9))
def test_verify_only_raises_signature_errors(headers, body, now):
    try:
        verify(headers, body, SECRET, now=now)
    except SignatureError as exc:
        assert SECRET not in str(exc) and "\n" not in str(exc)
    else:
        pytest.fail("an arbitrary header set verified")
