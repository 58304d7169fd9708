"""The fake Whop API misbehaving on purpose: the fault modes a soak drives, and its request log."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timezone

import httpx
import pytest

from whopfunnel_plugin.clock import FixedClock
from whopfunnel_plugin.errors import RetryLater, WhopAPIError
from whopfunnel_plugin.whop.client import WhopClient
from whopfunnel_plugin.whop.fake import FakeWhop, serve_in_thread
from whopfunnel_plugin.whop.ratelimit import RateLimiter

KEY = "fake_sk_faults_key"
START = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=timezone.utc)


@pytest.fixture
def clock():
    return FixedClock(START)


@pytest.fixture
def fake(clock):
    return FakeWhop(KEY, owners={"biz_1": "user_owner"}, company_id="biz_1", clock=clock)


def client_for(fake, clock, **kwargs):
    """A client on the fake in-process; its sleeps move the shared clock, nothing really waits."""
    return WhopClient(KEY, base_url="http://whop.test/api/v1", transport=httpx.WSGITransport(app=fake),
                      sleep=clock.advance, monotonic=lambda: clock.now().timestamp(), clock=clock, **kwargs)


def raw(fake, method, path, **kwargs):
    headers = {"Authorization": f"Bearer {KEY}", **kwargs.pop("headers", {})}
    with httpx.Client(transport=httpx.WSGITransport(app=fake), base_url="http://whop.test") as http:
        return http.request(method, path, headers=headers, **kwargs)


def statuses(fake):
    return Counter(r.status for r in fake.seen_requests())


# -- Api-Version-Date -------------------------------------------------------------------------


def test_an_unknown_api_version_date_is_refused_with_400(fake, clock):
    answer = raw(fake, "GET", "/accounts/biz_1", headers={"Api-Version-Date": "2099-01-01"})
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == ("unknown Api-Version-Date '2099-01-01'; known: "
                                                 "2026-08-21, 2026-10-15-1")
    assert raw(fake, "GET", "/accounts/biz_1").status_code == 200  # none: Whop's original behaviour
    with client_for(fake, clock, api_version_date="2099-01-01") as wrong:
        with pytest.raises(WhopAPIError) as info:
            wrong.get_account("biz_1")
    assert info.value.status_code == 400 and not isinstance(info.value, RetryLater)
    with client_for(fake, clock) as right:
        right.get_account("biz_1")
    assert [r.api_version_date for r in fake.seen_requests()] == ["2099-01-01", None, "2099-01-01",
                                                                 "2026-10-15-1"]


# -- limit_rate -------------------------------------------------------------------------------


def test_past_the_rate_the_fake_answers_429_and_does_nothing(fake, clock):
    fake.limit_rate(3, per=1)
    channel = fake.channel_for("user_1")
    answers = [raw(fake, "POST", "/messages", json={"channel_id": channel, "content": f"m{i}"})
               for i in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    reset = int(START.timestamp()) + 1
    assert (answers[3].headers["retry-after"], answers[3].headers["x-ratelimit-reset"]) == ("1", str(reset))
    assert [m["content"] for m in fake.sent_messages()] == ["m0", "m1", "m2"]
    clock.advance(1)  # the next window
    assert raw(fake, "POST", "/messages", json={"channel_id": channel, "content": "m3"}).status_code == 200
    fake.limit_rate(1, per=10, headers=("retry-after-ms",))
    raw(fake, "GET", "/accounts/biz_1")
    limited = raw(fake, "GET", "/accounts/biz_1")
    assert (limited.status_code, dict(limited.headers)["retry-after-ms"]) == (429, "8750")
    assert "retry-after" not in limited.headers
    fake.limit_rate(None)
    assert raw(fake, "GET", "/accounts/biz_1").status_code == 200


def test_a_burst_through_the_budgeted_client_meets_no_429(fake, clock):
    fake.limit_rate(10, per=1)
    limiter = RateLimiter(8, monotonic=lambda: clock.now().timestamp(), sleep=clock.advance)
    with client_for(fake, clock, limiter=limiter) as client:
        channel = client.open_dm_channel("user_1", "biz_1")
        for i in range(100):
            client.send_message(channel, f"reply {i}", idempotency_key=f"wf-{i}")
    assert statuses(fake) == {200: 101}
    assert len(fake.sent_messages()) == 100


def test_the_same_burst_without_a_budget_meets_a_storm_of_429(fake, clock):
    fake.limit_rate(10, per=1)
    with client_for(fake, clock) as client:  # no budget: only Whop's 429s slow it down
        channel = client.open_dm_channel("user_1", "biz_1")
        for i in range(100):
            client.send_message(channel, f"reply {i}", idempotency_key=f"wf-{i}")
    assert statuses(fake)[429] >= 9
    assert len(fake.sent_messages()) == 100  # delivered all the same, each once


# -- slow, fail_next --------------------------------------------------------------------------


def test_slow_holds_the_next_requests_with_the_injected_sleep(clock):
    naps = []
    fake = FakeWhop(KEY, company_id="biz_1", clock=clock, sleep=naps.append)
    fake.slow(2.5, n=2)
    for _ in range(3):
        assert raw(fake, "GET", "/accounts/me").status_code == 200
    assert naps == [2.5, 2.5]
    fake.slow(0.5)  # every request, until cleared
    raw(fake, "GET", "/accounts/me")
    raw(fake, "GET", "/accounts/me")
    fake.clear_faults()
    raw(fake, "GET", "/accounts/me")
    assert naps == [2.5, 2.5, 0.5, 0.5]


def test_fail_next_answers_without_acting(fake, clock):
    fake.fail_next(2, 503, {"Retry-After": "1"})
    channel = fake.channel_for("user_1")
    with client_for(fake, clock) as client:
        assert client.send_message(channel, "hi", idempotency_key="wf-1")["content"] == "hi"
    assert [(r.status, r.outcome) for r in fake.seen_requests()] == [
        (503, "injected"), (503, "injected"), (200, "ok")]
    assert len(fake.sent_messages()) == 1


# -- lose_next: the work is done, the answer is lost ------------------------------------------


def test_a_lost_answer_on_a_keyed_send_is_resent_and_whop_shows_it_once(fake, clock):
    fake.lose_next(1, status=502)
    channel = fake.channel_for("user_1")
    with client_for(fake, clock) as client:
        sent = client.send_message(channel, "Welcome!", idempotency_key="wf-7")
    (only,) = fake.sent_messages()
    assert (only["id"], only["idempotency_key"]) == (sent["id"], "wf-7")
    assert [(r.idempotency_key, r.status, r.outcome) for r in fake.seen_requests()] == [
        ("wf-7", 502, "lost"), ("wf-7", 200, "ok")]


def test_a_lost_answer_on_a_keyless_notification_is_not_resent(fake, clock):
    fake.lose_next(1, status=500)
    with client_for(fake, clock) as client:
        with pytest.raises(RetryLater, match="not resent"):
            client.post_notification("Help", "Ann asked", account_id="biz_1")
    assert len(fake.notifications) == 1  # it did happen: resending would notify twice
    assert [r.outcome for r in fake.seen_requests()] == ["lost"]


def test_a_dropped_connection_after_the_work_over_real_http(fake):
    base_url, stop = serve_in_thread(fake)
    try:
        with WhopClient(KEY, base_url=base_url, sleep=lambda s: None, timeout=5) as client:
            channel = client.open_dm_channel("user_1")
            fake.lose_next(1, drop=True)
            client.send_message(channel, "Welcome!", idempotency_key="wf-8")
            fake.lose_next(1, drop=True)
            with pytest.raises(RetryLater, match="RemoteProtocolError.*not resent"):
                client.post_notification("Help", "Ann asked", account_id="biz_1")
    finally:
        stop()
    assert [(m["content"], m["idempotency_key"]) for m in fake.sent_messages()] == [("Welcome!", "wf-8")]
    assert len(fake.notifications) == 1
    assert [(r.path, r.status, r.outcome) for r in fake.seen_requests()] == [
        ("/dm_channels", 200, "ok"), ("/messages", None, "dropped"), ("/messages", 200, "ok"),
        ("/notifications", None, "dropped")]


def test_only_5xx_or_a_drop_lose_an_answer(fake):
    with pytest.raises(ValueError, match="a 5xx or a dropped connection"):
        fake.lose_next(1, status=200)
    with pytest.raises(ValueError, match="limit_rate needs"):
        fake.limit_rate(0)
    with pytest.raises(ValueError, match="negative"):
        fake.slow(-1)


# -- the request log: what a checker counts ---------------------------------------------------


def test_two_keys_for_one_reply_show_as_a_duplicate_one_key_never_does(fake, clock):
    channel = fake.channel_for("user_1")
    with client_for(fake, clock) as client:
        for key in ("wf-1", "wf-1", "wf-2"):
            client.send_message(channel, "Welcome!", idempotency_key=key)
    keys = [m["idempotency_key"] for m in fake.sent_messages()]
    assert keys == ["wf-1", "wf-2"]  # the resend with wf-1 shows once; wf-2 is a second message
    assert Counter(r.idempotency_key for r in fake.seen_requests()) == {"wf-1": 2, "wf-2": 1}
    assert fake.requests == [("POST", "/messages")] * 3


def test_concurrent_senders_under_faults_never_duplicate(fake):
    base_url, stop = serve_in_thread(fake, threads=4)
    try:
        with WhopClient(KEY, base_url=base_url, sleep=lambda s: None, timeout=5, max_retries=12) as client:
            channel = client.open_dm_channel("user_1")
            fake.fail_next(6, 503)
            fake.lose_next(6, status=500)

            def send(worker):
                for i in range(10):
                    client.send_message(channel, f"{worker}-{i}", idempotency_key=f"wf-{worker}-{i}")

            threads = [threading.Thread(target=send, args=(w,)) for w in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        stop()
    keys = [m["idempotency_key"] for m in fake.sent_messages()]
    assert sorted(keys) == sorted(f"wf-{w}-{i}" for w in range(6) for i in range(10))
    outcomes = Counter(r.outcome for r in fake.seen_requests())
    assert (outcomes["injected"], outcomes["lost"]) == (6, 6)
