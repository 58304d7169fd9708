"""The httpx client for the handful of Whop REST API v1 endpoints whopfunnel uses.

It speaks the API generation whop-sdk 2.x describes: every request pins
`Api-Version-Date` (default `API_VERSION_DATE`, the version the tests run against),
account naming (`account_id`; a `biz_...` company id is an account id), the owner from
`GET /accounts/{id}`. Retries never double-act (see `retries.py`): what the client does
not retry of a retryable failure it raises as `RetryLater`, with Whop's requested wait.
Every request first takes its slot from the shared `RateLimiter`; a 429 pauses it.
The API key never leaves the Authorization header: error texts and logs are redacted.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from ..clock import SystemClock
from ..errors import ConfigError, RetryLater, WhopAPIError
from . import retries as policy
from .ratelimit import RateLimiter

log = logging.getLogger("whopfunnel.whop")

DEFAULT_BASE_URL = "https://api.whop.com/api/v1"
API_VERSION_DATE = "2026-10-15-1"  # whop-sdk 2.6.0's default, and what the contract tests pin
MAX_PAUSE = 3600.0  # a longer Retry-After is taken as an hour: no header stops us for days
BODY_LIMIT = 500
SHORT_LIMIT = 200
REDACTED = "[REDACTED]"
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")


@dataclass(frozen=True)
class Page:
    """One page of a cursor-paginated list."""

    data: list[dict]
    end_cursor: str | None
    has_next_page: bool


class WhopClient:
    """A small synchronous Whop API client; one instance per API key, safe to share.

    `retries=` on every endpoint overrides `max_retries` for that call; `retries=0` means
    no in-process retry and no sleeping a Whop-requested wait (a caller holding a claim).
    `limiter` is the shared request budget (None: no budget, 429 pauses only).
    """

    def __init__(self, api_key: str, *, base_url: str = DEFAULT_BASE_URL,
                 transport: httpx.BaseTransport | None = None, timeout: float = 10.0,
                 max_retries: int = 2, api_version_date: str | None = API_VERSION_DATE,
                 limiter: RateLimiter | None = None, max_pacing_wait: float = 5.0,
                 sleep: Callable[[float], Any] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None, clock=None):
        if not api_key or not isinstance(api_key, str):
            raise ConfigError("a Whop API key is required")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.max_pacing_wait = max_pacing_wait
        self.limiter = limiter or RateLimiter(monotonic=monotonic, sleep=sleep)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock or SystemClock()  # for Retry-After dates and X-RateLimit-Reset
        self._owners: dict[str, str] = {}
        headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json",
                   "User-Agent": f"whopfunnel/{_version()}"}
        if api_version_date:
            headers["Api-Version-Date"] = api_version_date
        self._http = httpx.Client(base_url=self.base_url + "/", headers=headers, transport=transport,
                                  timeout=httpx.Timeout(timeout), follow_redirects=False)

    def __repr__(self) -> str:
        return f"WhopClient(base_url={self.base_url!r})"

    # -- endpoints -------------------------------------------------------------------------

    def open_dm_channel(self, user_id: str, account_id: str | None = None, *,
                        idempotency_key: str | None = None, retries: int | None = None) -> str:
        """Open (or reuse) the DM channel with `user_id`, scoped to `account_id`; its id."""
        body: dict[str, Any] = {"with_user_ids": [user_id]}
        if account_id:
            body["account_id"] = account_id
        # Whop answers an existing channel with that channel: a resend cannot open two.
        result = self._request("POST", "/dm_channels", json_body=body, idempotency_key=idempotency_key,
                               retries=retries, idempotent=True)
        return _id(result, "POST /dm_channels")

    def send_message(self, channel_id: str, content: str, *, idempotency_key: str,
                     retries: int | None = None) -> dict:
        """Post `content` to a channel; the key makes retries (ours and the outbox's) safe."""
        result = self._request("POST", "/messages", json_body={"channel_id": channel_id, "content": content},
                               idempotency_key=idempotency_key, retries=retries)
        _id(result, "POST /messages")
        return result

    def list_messages(self, channel_id: str, *, after: str | None = None, first: int = 50,
                      retries: int | None = None) -> Page:
        """One page of a channel's messages, oldest first, after the cursor `after`."""
        params: dict[str, Any] = {"channel_id": channel_id, "first": first, "direction": "asc"}
        if after:
            params["after"] = after
        result = self._request("GET", "/messages", params=params, retries=retries)
        data, info = result.get("data"), result.get("page_info") or {}
        if not isinstance(data, list) or not isinstance(info, dict):
            raise WhopAPIError("GET /messages failed: response has no data list or page_info")
        end = info.get("end_cursor")
        return Page(data=[m for m in data if isinstance(m, dict)],
                    end_cursor=str(end) if end else None, has_next_page=bool(info.get("has_next_page")))

    def iter_messages(self, channel_id: str, *, after: str | None = None, page_size: int = 50,
                      max_pages: int | None = None,
                      retries: int | None = None) -> Iterator[tuple[dict, str | None]]:
        """Follow the cursor; yields (message, end cursor of its page) so callers can checkpoint."""
        pages = 0
        while max_pages is None or pages < max_pages:
            page = self.list_messages(channel_id, after=after, first=page_size, retries=retries)
            pages += 1
            for message in page.data:
                yield message, page.end_cursor
            # A cursor that doesn't move would loop forever on a misbehaving server.
            if not page.has_next_page or not page.end_cursor or page.end_cursor == after:
                return
            after = page.end_cursor

    def get_account(self, account_id: str, *, retries: int | None = None) -> dict:
        """`GET /accounts/{id}`: the account (a `biz_...` company) with its `owner`."""
        return self._request("GET", f"/accounts/{_segment(account_id)}", retries=retries)

    def account_owner_id(self, account_id: str, *, retries: int | None = None) -> str:
        """The account owner's user id; cached, owners rarely change and escalations repeat."""
        if account_id not in self._owners:
            owner = self.get_account(account_id, retries=retries).get("owner")
            if not isinstance(owner, dict) or not isinstance(owner.get("id"), str) or not owner["id"]:
                raise WhopAPIError(f"GET /accounts/{account_id} failed: response has no owner.id")
            self._owners[account_id] = owner["id"]
        return self._owners[account_id]

    def post_notification(self, title: str, content: str, *, account_id: str | None = None,
                          experience_id: str | None = None, user_ids: list[str] | None = None,
                          idempotency_key: str | None = None, retries: int | None = None) -> dict:
        """Notify an account's team or an experience's users (`user_ids` narrows it to them).

        Exactly one of `account_id` / `experience_id`. Without an `idempotency_key` the
        request is never resent once Whop may have acted on it (a read timeout, a 5xx).
        """
        if (account_id is None) == (experience_id is None):
            raise ValueError("post_notification needs exactly one of account_id or experience_id")
        body: dict[str, Any] = {"title": title, "content": content}
        if account_id is not None:
            body["account_id"] = account_id
        else:
            body["experience_id"] = experience_id
        if user_ids:
            body["user_ids"] = list(user_ids)
        return self._request("POST", "/notifications", json_body=body, idempotency_key=idempotency_key,
                             retries=retries)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WhopClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, params: dict | None = None,
                 json_body: dict | None = None, idempotency_key: str | None = None,
                 retries: int | None = None, idempotent: bool = False) -> dict:
        what = f"{method} {path}"
        budget = self.max_retries if retries is None else retries
        # May a resend make Whop act twice? Not for reads, keyed requests, or idempotent ones.
        resendable = method == "GET" or idempotency_key is not None or idempotent
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
        attempt = 0
        while True:
            self._take_slot(what, may_pause=budget > 0)
            try:
                response = self._http.request(method, path.lstrip("/"), params=params, json=json_body,
                                              headers=headers)
            except httpx.TransportError as exc:
                reason = self._redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
                if not (resendable or isinstance(exc, policy.NEVER_SENT)):
                    # `from None`: the chained httpx error would print its own, unredacted text.
                    raise RetryLater(f"{what} failed: {reason}; not resent: Whop may have acted on "
                                     "it and it has no Idempotency-Key") from None
                if attempt >= budget:
                    raise RetryLater(f"{what} failed: connection error: {reason}") from None
                delay = policy.backoff(attempt, self._rng)
                log.info("%s: %s; retry %d of %d in %.2fs", what, reason, attempt + 1, budget, delay)
                self._sleep(delay)
                attempt += 1
                continue
            if response.is_success:
                return self._json(response, what)
            if not policy.retryable(response):
                raise self._error(response, what)
            wait = policy.requested_wait(response.headers, self._clock.now().timestamp())
            delay = wait.seconds if wait else policy.backoff(attempt, self._rng)
            too_many = response.status_code == 429  # refused before acting: safe to resend
            if too_many:
                self.limiter.pause(min(delay, MAX_PAUSE))
            if not (resendable or too_many):
                raise self._error(response, what, wait, "not resent: Whop may have acted on it and "
                                  "it has no Idempotency-Key")
            if attempt >= budget or (wait is not None and not wait.sleepable):
                raise self._error(response, what, wait)
            log.info("%s: HTTP %d; retry %d of %d in %.2fs", what, response.status_code,
                     attempt + 1, budget, delay)
            if not too_many:  # a 429's wait is slept by the limiter, for every caller at once
                self._sleep(delay)
            attempt += 1

    def _take_slot(self, what: str, *, may_pause: bool) -> None:
        refused = self.limiter.acquire(max_wait=self.max_pacing_wait,
                                       max_pause=policy.MAX_SLEEP if may_pause else 0.0)
        if refused is not None:
            raise RetryLater(f"{what} not sent: Whop asked us to wait, or the request budget is "
                             f"spent, for {refused:.1f} s more", retry_after=refused)

    def _json(self, response: httpx.Response, what: str) -> dict:
        if not response.content.strip():
            return {}
        try:
            result = response.json()
        except ValueError:
            body = self._body(response)
            raise WhopAPIError(f"{what} failed: malformed JSON in HTTP {response.status_code} response: "
                               f"{body[:SHORT_LIMIT]}", status_code=response.status_code, body=body) from None
        if not isinstance(result, dict):
            raise WhopAPIError(f"{what} failed: expected a JSON object, got {type(result).__name__}",
                               status_code=response.status_code, body=self._body(response))
        return result

    def _error(self, response: httpx.Response, what: str, wait: policy.Wait | None = None,
               note: str | None = None) -> WhopAPIError:
        """The error for an answer: `RetryLater` for a retryable one (`wait` known or not)."""
        body = self._body(response)
        short = body[:SHORT_LIMIT]
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if isinstance(doc, dict):  # prefer the API's own words: {"error": {"message"}} or {"message"}
            err = doc.get("error")
            message = err.get("message") if isinstance(err, dict) else err if isinstance(err, str) else None
            message = message or doc.get("message")
            if isinstance(message, str) and message.strip():
                short = self._redact(" ".join(message.split()))[:SHORT_LIMIT]
        status = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
        text = f"{what} failed: {status}: {short}" if short else f"{what} failed: {status}"
        if not policy.retryable(response):
            return WhopAPIError(text, status_code=response.status_code, body=body)
        if note:
            text += f"; {note}"
        if wait is not None:
            text += f"; Whop asks to retry in {wait.seconds:.1f} s ({wait.header})"
        return RetryLater(text, status_code=response.status_code, body=body,
                          retry_after=wait.seconds if wait else None)

    def _body(self, response: httpx.Response) -> str:
        try:
            text = response.text
        except (UnicodeDecodeError, LookupError):
            text = response.content.decode("utf-8", "replace")
        return self._redact(" ".join(text.split()))[:BODY_LIMIT]

    def _redact(self, text: str) -> str:
        return _BEARER.sub(r"\1" + REDACTED, text.replace(self._api_key, REDACTED))


def _id(result: dict, what: str) -> str:
    value = result.get("id")
    if not isinstance(value, str) or not value:
        raise WhopAPIError(f"{what} failed: response has no id")
    return value


def _segment(value: str) -> str:
    if not value:
        raise ValueError("an id is required")
    return quote(value, safe="")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("whopfunnel")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0"
