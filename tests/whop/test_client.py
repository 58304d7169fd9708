"""The Whop client on httpx.MockTransport: request shapes, pagination, retries, redaction."""

from __future__ import annotations

import json
import logging
import random
from datetime import datetime, timezone

import httpx
import pytest

from whopfunnel_plugin.clock import FixedClock
from whopfunnel_plugin.errors import RetryLater, WhopAPIError
from whopfunnel_plugin.whop.client import API_VERSION_DATE, Page, WhopClient
from whopfunnel_plugin.whop.ratelimit import RateLimiter

KEY = "whop_sk_live_Zx81TOPSECRETkey"
BASE = "https://api.whop.com/api/v1"
MESSAGE = {"id": "msg_1", "content": "hi", "created_at": "2026-03-01T12:00:00Z",
           "user": {"id": "user_bot", "username": "bot", "name": "Bot"}}


class Server:
    """A scripted MockTransport handler that records every request.

    Each script item is an httpx.Response, an exception to raise, or a callable(request);
    the last item repeats once the script runs out.
    """

    def __init__(self, *script):
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return item(request) if callable(item) else item


def ok(payload) -> httpx.Response:
    return httpx.Response(200, json=payload)


def fail(status: int, payload=None, **headers) -> httpx.Response:
    return httpx.Response(status, json=payload or {"error": {"message": "nope"}},
                          headers={k.replace("_", "-"): v for k, v in headers.items()})


class Time:
    """A monotonic clock that only moves when someone sleeps; records every sleep."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def make():
    """make(*script, **client_kwargs) -> (client, server, sleeps)."""
    clients = []

    def build(*script, **kwargs):
        server, time = Server(*script), kwargs.pop("time", None) or Time()
        kwargs.setdefault("rng", random.Random(7))
        client = WhopClient(KEY, transport=httpx.MockTransport(server), sleep=time.sleep,
                            monotonic=time.monotonic, **kwargs)
        clients.append(client)
        return client, server, time.sleeps

    yield build
    for client in clients:
        client.close()


def body(request: httpx.Request):
    return json.loads(request.content)


# -- request shapes ----------------------------------------------------------------------------


def test_open_dm_channel_posts_the_member_and_account(make):
    client, server, _ = make(ok({"id": "feed_1", "created_at": "x", "last_message_at": None, "name": "n"}))
    assert client.open_dm_channel("user_1", "biz_1") == "feed_1"
    (request,) = server.requests
    assert (request.method, str(request.url)) == ("POST", f"{BASE}/dm_channels")
    assert body(request) == {"with_user_ids": ["user_1"], "account_id": "biz_1"}
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("whopfunnel/")
    assert request.headers["api-version-date"] == API_VERSION_DATE == "2026-10-15-1"
    assert "idempotency-key" not in request.headers


def test_timeouts_are_always_set(make):
    client, server, _ = make(ok({"id": "feed_1"}), timeout=3.5)
    client.open_dm_channel("user_1")
    timeouts = server.requests[0].extensions["timeout"]
    assert timeouts == dict.fromkeys(["connect", "read", "write", "pool"], 3.5)
    assert body(server.requests[0]) == {"with_user_ids": ["user_1"]}


def test_the_api_version_date_is_configurable(make):
    client, server, _ = make(ok({"id": "feed_1"}), api_version_date="2026-08-21")
    client.open_dm_channel("user_1")
    assert server.requests[0].headers["api-version-date"] == "2026-08-21"
    client, server, _ = make(ok({"id": "feed_1"}), api_version_date=None)  # Whop's original behaviour
    client.open_dm_channel("user_1", idempotency_key="wf-dm-1")
    assert "api-version-date" not in server.requests[0].headers
    assert server.requests[0].headers["idempotency-key"] == "wf-dm-1"


def test_send_message_posts_content_with_the_idempotency_key(make):
    client, server, _ = make(ok(MESSAGE))
    assert client.send_message("feed_1", "hi **there**", idempotency_key="wf-1-2") == MESSAGE
    (request,) = server.requests
    assert (request.method, request.url.path) == ("POST", "/api/v1/messages")
    assert body(request) == {"channel_id": "feed_1", "content": "hi **there**"}
    assert request.headers["idempotency-key"] == "wf-1-2"


def test_send_message_without_an_id_in_the_answer_is_an_error(make):
    client, _, _ = make(ok({"content": "hi"}))
    with pytest.raises(WhopAPIError, match="POST /messages failed: response has no id"):
        client.send_message("feed_1", "hi", idempotency_key="k")


def test_list_messages_asks_oldest_first_after_the_cursor(make):
    page = {"data": [MESSAGE], "page_info": {"end_cursor": "c2", "start_cursor": "c1",
                                             "has_next_page": True, "has_previous_page": False}}
    client, server, _ = make(ok(page))
    assert client.list_messages("feed_1", after="c0", first=10) == Page([MESSAGE], "c2", True)
    request = server.requests[0]
    assert (request.method, request.url.path) == ("GET", "/api/v1/messages")
    assert dict(request.url.params) == {"channel_id": "feed_1", "first": "10", "after": "c0",
                                        "direction": "asc"}


def test_list_messages_without_a_cursor_sends_no_after(make):
    client, server, _ = make(ok({"data": [], "page_info": {"end_cursor": None, "has_next_page": False}}))
    assert client.list_messages("feed_1") == Page([], None, False)
    assert "after" not in server.requests[0].url.params
    assert server.requests[0].url.params["first"] == "50"


def test_list_messages_rejects_a_response_without_data(make):
    client, _, _ = make(ok({"items": []}))
    with pytest.raises(WhopAPIError, match="GET /messages failed: response has no data list"):
        client.list_messages("feed_1")


def three_pages(request: httpx.Request) -> httpx.Response:
    after = request.url.params.get("after")
    pages = {None: (["m1", "m2"], "c1", True), "c1": (["m3", "m4"], "c2", True), "c2": (["m5"], "c3", False)}
    ids, cursor, more = pages[after]
    return ok({"data": [{"id": i} for i in ids], "page_info": {"end_cursor": cursor, "has_next_page": more}})


def test_iter_messages_follows_the_cursor_across_three_pages(make):
    client, server, _ = make(three_pages)
    got = [(m["id"], cursor) for m, cursor in client.iter_messages("feed_1", page_size=2)]
    assert got == [("m1", "c1"), ("m2", "c1"), ("m3", "c2"), ("m4", "c2"), ("m5", "c3")]
    assert [r.url.params.get("after") for r in server.requests] == [None, "c1", "c2"]
    assert {r.url.params["first"] for r in server.requests} == {"2"}


def test_iter_messages_stops_at_max_pages_and_on_a_stuck_cursor(make):
    client, server, _ = make(three_pages)
    assert [m["id"] for m, _ in client.iter_messages("feed_1", max_pages=2)] == ["m1", "m2", "m3", "m4"]
    assert len(server.requests) == 2
    stuck = ok({"data": [{"id": "m1"}], "page_info": {"end_cursor": "c1", "has_next_page": True}})
    client, server, _ = make(stuck)
    assert [m["id"] for m, _ in client.iter_messages("feed_1", after="c1")] == ["m1"]
    assert len(server.requests) == 1


ACCOUNT = {"id": "biz_1", "title": "Acme", "owner": {"id": "user_owner", "username": "o", "name": "O"}}


def test_the_account_owner_is_looked_up_once_per_account(make):
    client, server, _ = make(ok(ACCOUNT))
    assert client.account_owner_id("biz_1") == "user_owner"
    assert client.account_owner_id("biz_1") == "user_owner"
    assert [(r.method, r.url.path) for r in server.requests] == [("GET", "/api/v1/accounts/biz_1")]
    assert client.get_account("biz_1") == ACCOUNT
    assert len(server.requests) == 2


@pytest.mark.parametrize("answer", [{"id": "biz_1"}, {"id": "biz_1", "owner": {"username": "o"}},
                                    {"id": "biz_1", "owner_user": {"id": "user_owner"}}])
def test_an_account_without_an_owner_is_an_error(make, answer):
    client, _, _ = make(ok(answer))
    with pytest.raises(WhopAPIError, match=r"^GET /accounts/biz_1 failed: response has no owner.id$"):
        client.account_owner_id("biz_1")


def test_the_account_id_is_escaped_in_the_path(make):
    client, server, _ = make(ok({"id": "x"}))
    client.get_account("biz/../x")
    assert server.requests[0].url.raw_path == b"/api/v1/accounts/biz%2F..%2Fx"


def test_post_notification_to_an_account_or_an_experience(make):
    client, server, _ = make(ok({"success": True}))
    answer = client.post_notification("Help", "Ann asked", account_id="biz_1", user_ids=["user_owner"],
                                      idempotency_key="wf-7-notification")
    assert answer == {"success": True}
    client.post_notification("Help", "Ann asked", experience_id="exp_1")
    assert server.requests[0].url.path == "/api/v1/notifications"
    assert body(server.requests[0]) == {"account_id": "biz_1", "title": "Help", "content": "Ann asked",
                                        "user_ids": ["user_owner"]}
    assert server.requests[0].headers["idempotency-key"] == "wf-7-notification"
    assert body(server.requests[1]) == {"experience_id": "exp_1", "title": "Help", "content": "Ann asked"}
    assert "idempotency-key" not in server.requests[1].headers


@pytest.mark.parametrize("targets", [{}, {"account_id": "biz_1", "experience_id": "exp_1"}])
def test_post_notification_needs_exactly_one_target(make, targets):
    client, server, _ = make(ok({"success": True}))
    with pytest.raises(ValueError, match="exactly one of account_id or experience_id"):
        client.post_notification("Help", "Ann asked", **targets)
    assert server.requests == []


def test_context_manager_closes_the_client(make):
    client, _, _ = make(ok({}))
    with client as same:
        assert same is client
    with pytest.raises(RuntimeError):
        client.get_account("biz_1")


# -- retries -----------------------------------------------------------------------------------


def test_429_with_retry_after_seconds_is_honoured(make):
    client, server, sleeps = make(fail(429, retry_after="2"), ok(MESSAGE))
    assert client.send_message("feed_1", "hi", idempotency_key="k")["id"] == "msg_1"
    assert sleeps == [2.0]
    assert len(server.requests) == 2


def test_retry_after_ms_wins_over_retry_after(make):
    client, _, sleeps = make(fail(429, retry_after_ms="1500", retry_after="9"), ok(MESSAGE))
    client.send_message("feed_1", "hi", idempotency_key="k")
    assert sleeps == [1.5]


def test_retry_after_as_an_http_date(make):
    clock = FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc))
    client, _, sleeps = make(fail(503, retry_after="Sun, 01 Mar 2026 12:00:05 GMT"), ok(MESSAGE), clock=clock)
    client.send_message("feed_1", "hi", idempotency_key="k")
    assert sleeps == [5.0]


@pytest.mark.parametrize("value", ["-1", "soon", "Sun, 01 Mar 2026 11:00:00 GMT"])
def test_an_unusable_retry_after_falls_back_to_backoff(make, value):
    clock = FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc))
    client, _, sleeps = make(fail(429, retry_after=value), ok(MESSAGE), clock=clock)
    client.send_message("feed_1", "hi", idempotency_key="k")
    assert len(sleeps) == 1 and 0.375 <= sleeps[0] <= 0.5


@pytest.mark.parametrize("headers, wait", [({"retry_after": "61"}, 61.0), ({"retry_after": "3600"}, 3600.0),
                                           ({"retry_after_ms": "90000"}, 90.0)])
def test_a_wait_over_60_seconds_is_never_slept_but_handed_back(make, headers, wait):
    client, server, sleeps = make(fail(429, **headers), ok(MESSAGE))
    with pytest.raises(RetryLater) as info:
        client.send_message("feed_1", "hi", idempotency_key="k")
    assert (info.value.retry_after, info.value.status_code) == (wait, 429)
    header = next(iter(headers)).replace("_", "-")
    assert str(info.value).endswith(f"Whop asks to retry in {wait:.1f} s ({header})")
    assert len(server.requests) == 1 and sleeps == []


def test_x_ratelimit_reset_is_unix_seconds_and_defers_at_once(make):
    clock = FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc))
    reset = str(int(clock.now().timestamp()) + 7)
    client, server, sleeps = make(fail(429, x_ratelimit_reset=reset), ok(MESSAGE), clock=clock)
    with pytest.raises(RetryLater) as info:
        client.send_message("feed_1", "hi", idempotency_key="k")
    assert info.value.retry_after == 7.0
    assert len(server.requests) == 1 and sleeps == []
    # a Retry-After beside it is the explicit ask, and short enough to sleep
    client, server, sleeps = make(fail(429, x_ratelimit_reset=reset, retry_after="2"), ok(MESSAGE),
                                  clock=clock)
    client.send_message("feed_1", "hi", idempotency_key="k")
    assert sleeps == [2.0] and len(server.requests) == 2


def test_an_x_ratelimit_reset_in_the_past_falls_back_to_backoff(make):
    clock = FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc))
    client, _, sleeps = make(fail(503, x_ratelimit_reset="30"), ok(MESSAGE), clock=clock)
    client.send_message("feed_1", "hi", idempotency_key="k")
    assert len(sleeps) == 1 and 0.375 <= sleeps[0] <= 0.5


def test_500_then_success(make):
    client, server, sleeps = make(fail(500), ok({"id": "feed_1"}))
    assert client.open_dm_channel("user_1") == "feed_1"
    assert len(server.requests) == 2 and len(sleeps) == 1


def test_backoff_doubles_with_jitter_and_caps_at_8_seconds(make):
    client, server, sleeps = make(fail(502), max_retries=6)
    with pytest.raises(WhopAPIError):
        client.get_account("biz_1")
    assert len(server.requests) == 7
    for slept, base in zip(sleeps, [0.5, 1, 2, 4, 8, 8], strict=True):
        assert 0.75 * base <= slept <= base
    assert len(set(sleeps)) == 6  # jitter differs per attempt


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_retryable_statuses(make, status):
    client, server, _ = make(fail(status), ok({"id": "feed_1"}))
    assert client.open_dm_channel("user_1") == "feed_1"
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(make, status):
    client, server, sleeps = make(fail(status), ok({"id": "feed_1"}))
    with pytest.raises(WhopAPIError) as info:
        client.open_dm_channel("user_1")
    assert info.value.status_code == status
    assert len(server.requests) == 1 and sleeps == []


def test_connect_timeout_then_success(make):
    client, server, sleeps = make(httpx.ConnectTimeout("timed out"), ok({"id": "feed_1"}))
    assert client.open_dm_channel("user_1") == "feed_1"
    assert len(server.requests) == 2 and len(sleeps) == 1


def test_connection_errors_exhaust_retries_into_retry_later(make):
    client, server, sleeps = make(httpx.ConnectError("connection refused"))
    with pytest.raises(RetryLater) as info:
        client.send_message("feed_1", "hi", idempotency_key="k")
    assert str(info.value) == "POST /messages failed: connection error: ConnectError: connection refused"
    assert (info.value.status_code, info.value.retry_after) == (None, None)
    assert isinstance(info.value, WhopAPIError)
    assert len(server.requests) == 3 and len(sleeps) == 2


# -- never double-act: what may have reached Whop is resent only when it is safe -------------


@pytest.mark.parametrize("failure", [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("cut off"),
                                     httpx.WriteTimeout("stuck"), fail(500), fail(502), fail(408)])
def test_a_keyless_post_that_may_have_acted_is_never_resent(make, failure):
    client, server, sleeps = make(failure, ok({"success": True}))
    with pytest.raises(RetryLater) as info:
        client.post_notification("Help", "Ann asked", account_id="biz_1")
    assert len(server.requests) == 1 and sleeps == []
    assert str(info.value).startswith("POST /notifications failed: ")
    assert "not resent: Whop may have acted on it and it has no Idempotency-Key" in str(info.value)


@pytest.mark.parametrize("failure", [httpx.ConnectError("refused"), httpx.ConnectTimeout("no route"),
                                     httpx.PoolTimeout("busy"), fail(429, retry_after="1")])
def test_a_keyless_post_that_never_reached_whop_is_resent(make, failure):
    client, server, _ = make(failure, ok({"success": True}))
    assert client.post_notification("Help", "Ann asked", account_id="biz_1") == {"success": True}
    assert len(server.requests) == 2


@pytest.mark.parametrize("call", [
    lambda c: c.post_notification("Help", "Ann asked", account_id="biz_1", idempotency_key="wf-9-n"),
    lambda c: c.send_message("feed_1", "hi", idempotency_key="wf-9"),
    lambda c: c.open_dm_channel("user_1", "biz_1"),  # Whop answers an existing channel with it
    lambda c: c.get_account("biz_1"),
])
def test_keyed_idempotent_and_read_requests_are_resent_after_a_read_timeout(make, call):
    client, server, _ = make(httpx.ReadTimeout("slow"), ok({"id": "x", "success": True}))
    call(client)
    assert len(server.requests) == 2
    assert len({r.headers.get("idempotency-key") for r in server.requests}) == 1


@pytest.mark.parametrize("failure", [fail(500), fail(429, retry_after="2"), httpx.ConnectError("refused"),
                                     httpx.ReadTimeout("slow")])
def test_retries_0_means_one_request_and_no_sleep(make, failure):
    client, server, sleeps = make(failure, ok(MESSAGE))
    with pytest.raises(RetryLater):
        client.send_message("feed_1", "hi", idempotency_key="k", retries=0)
    assert len(server.requests) == 1 and sleeps == []
    client, server, sleeps = make(failure, fail(500), ok(MESSAGE), max_retries=0)
    assert client.send_message("feed_1", "hi", idempotency_key="k", retries=2)["id"] == "msg_1"
    assert len(server.requests) == 3


def test_a_429_pauses_every_caller_of_the_client(make):
    client, server, sleeps = make(fail(429, retry_after="5"), ok(MESSAGE))
    with pytest.raises(RetryLater) as info:
        client.send_message("feed_1", "hi", idempotency_key="k", retries=0)
    assert info.value.retry_after == 5.0
    # A caller that may not wait (it holds a claim) is told to come back, and sends nothing.
    with pytest.raises(RetryLater) as info:
        client.list_messages("feed_1", retries=0)
    assert str(info.value).startswith("GET /messages not sent: Whop asked us to wait")
    assert info.value.retry_after == 5.0 and len(server.requests) == 1
    # One that may waits the pause out first.
    assert client.send_message("feed_1", "hi", idempotency_key="k")["id"] == "msg_1"
    assert sleeps == [5.0] and len(server.requests) == 2


def test_two_clients_on_one_limiter_share_the_budget_and_the_pause(make):
    time = Time()
    limiter = RateLimiter(2, monotonic=time.monotonic, sleep=time.sleep)
    first, server, _ = make(ok(MESSAGE), time=time, limiter=limiter)
    second, _, _ = make(ok(MESSAGE), time=time, limiter=limiter)
    for client in (first, second, first, second):
        client.send_message("feed_1", "hi", idempotency_key="k")
    assert time.sleeps == [0.5, 0.5, 0.5]  # 2 requests per second between them


def test_a_spent_budget_over_the_pacing_limit_is_handed_back(make):
    time = Time()
    limiter = RateLimiter(0.1, monotonic=time.monotonic, sleep=time.sleep)  # one request per 10 s
    client, server, sleeps = make(ok(MESSAGE), time=time, limiter=limiter, max_pacing_wait=5.0)
    client.send_message("feed_1", "hi", idempotency_key="k")
    with pytest.raises(RetryLater) as info:
        client.send_message("feed_1", "hi", idempotency_key="k2")
    assert info.value.retry_after == 10.0
    assert len(server.requests) == 1 and sleeps == []


def test_x_should_retry_false_stops_a_500(make):
    client, server, sleeps = make(fail(500, x_should_retry="false"), ok({"id": "feed_1"}))
    with pytest.raises(WhopAPIError) as info:
        client.open_dm_channel("user_1")
    assert info.value.status_code == 500
    assert len(server.requests) == 1 and sleeps == []


def test_x_should_retry_true_retries_a_400(make):
    client, server, _ = make(fail(400, x_should_retry="true"), ok({"id": "feed_1"}))
    assert client.open_dm_channel("user_1") == "feed_1"
    assert len(server.requests) == 2


@pytest.mark.parametrize("max_retries", [0, 1, 2, 4])
def test_attempts_are_bounded(make, max_retries):
    client, server, sleeps = make(fail(500), max_retries=max_retries)
    with pytest.raises(WhopAPIError) as info:
        client.send_message("feed_1", "hi", idempotency_key="k")
    assert info.value.status_code == 500
    assert len(server.requests) == max_retries + 1
    assert len(sleeps) == max_retries


def test_the_idempotency_key_is_the_same_on_every_retry(make):
    client, server, _ = make(fail(500), httpx.ReadTimeout("slow"), fail(429, retry_after="1"), ok(MESSAGE),
                             max_retries=3)
    client.send_message("feed_1", "hi", idempotency_key="wf-42")
    assert [r.headers["idempotency-key"] for r in server.requests] == ["wf-42"] * 4
    assert {r.content for r in server.requests} == {b'{"channel_id":"feed_1","content":"hi"}'}


def test_each_retry_is_logged_at_info(make, caplog):
    caplog.set_level(logging.INFO, logger="whopfunnel.whop")
    client, _, _ = make(fail(429, retry_after="2"), ok(MESSAGE))
    client.send_message("feed_1", "hi", idempotency_key="k")
    (record,) = [r for r in caplog.records if r.name == "whopfunnel.whop"]
    assert record.levelno == logging.INFO
    assert record.getMessage() == "POST /messages: HTTP 429; retry 1 of 2 in 2.00s"


# -- errors ------------------------------------------------------------------------------------


def test_error_message_names_the_call_status_and_api_message(make):
    client, _, _ = make(fail(422, {"error": {"type": "invalid", "message": "content is too long"}}))
    with pytest.raises(WhopAPIError) as info:
        client.send_message("feed_1", "x" * 9000, idempotency_key="k")
    assert str(info.value) == "POST /messages failed: HTTP 422 Unprocessable Entity: content is too long"
    assert info.value.status_code == 422
    assert json.loads(info.value.body)["error"]["message"] == "content is too long"


def test_error_body_is_truncated(make):
    client, _, _ = make(httpx.Response(500, text="<html>" + "oops " * 1000), max_retries=0)
    with pytest.raises(WhopAPIError) as info:
        client.get_account("biz_1")
    assert len(info.value.body) <= 500
    assert str(info.value).startswith(
        "GET /accounts/biz_1 failed: HTTP 500 Internal Server Error: <html>oops")
    assert len(str(info.value)) < 300


@pytest.mark.parametrize("response", [httpx.Response(200, text="{not json"),
                                      httpx.Response(200, json=["a", "list"])])
def test_malformed_json_is_a_whop_api_error(make, response):
    client, _, _ = make(response)
    expected = "GET /accounts/biz_1 failed: (malformed JSON|expected a JSON object)"
    with pytest.raises(WhopAPIError, match=expected):
        client.get_account("biz_1")


def test_empty_key_is_refused():
    with pytest.raises(Exception, match="API key is required"):
        WhopClient("")


# -- the key never leaks -------------------------------------------------------------------


def test_repr_shows_only_the_base_url(make):
    client, _, _ = make(ok({}), base_url="https://sandbox-api.whop.com/api/v1/")
    assert repr(client) == "WhopClient(base_url='https://sandbox-api.whop.com/api/v1')"


def test_key_echoed_by_the_server_is_redacted_everywhere(make, caplog):
    caplog.set_level(logging.DEBUG)
    echo = {"error": {"message": f"bad key {KEY}", "headers": {"authorization": f"Bearer {KEY}"}}}
    client, _, _ = make(fail(500, echo), fail(401, echo))
    with pytest.raises(WhopAPIError) as info:
        client.open_dm_channel("user_1")
    exc = info.value
    assert info.value.status_code == 401
    for text in (str(exc), repr(exc), exc.body, repr(client), caplog.text,
                 *(r.getMessage() for r in caplog.records)):
        assert KEY not in text
    assert "[REDACTED]" in str(exc) and "[REDACTED]" in exc.body
    assert KEY not in str(exc.__context__)


def test_key_in_a_transport_error_is_redacted(make, caplog):
    caplog.set_level(logging.DEBUG)
    client, _, _ = make(httpx.ConnectError(f"proxy refused Authorization: Bearer {KEY}"))
    with pytest.raises(WhopAPIError) as info:
        client.get_account("biz_1")
    assert KEY not in str(info.value) and KEY not in caplog.text
    assert info.value.__cause__ is None
    assert "connection error" in str(info.value)


def test_key_in_a_read_timeout_on_a_keyless_post_is_redacted(make, caplog):
    caplog.set_level(logging.DEBUG)
    client, _, _ = make(httpx.ReadTimeout(f"timed out reading for Bearer {KEY}"))
    with pytest.raises(RetryLater) as info:
        client.post_notification("Help", "Ann asked", account_id="biz_1")
    assert KEY not in str(info.value) and KEY not in repr(info.value) and KEY not in caplog.text
    assert info.value.__cause__ is None and "[REDACTED]" in str(info.value)


def test_bearer_tokens_other_than_ours_are_redacted_too(make):
    client, _, _ = make(fail(403, {"message": "token Bearer abc.def.ghi rejected"}))
    with pytest.raises(WhopAPIError) as info:
        client.get_account("biz_1")
    assert "abc.def.ghi" not in str(info.value)
