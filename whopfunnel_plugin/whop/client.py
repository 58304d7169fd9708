"""The httpx client for the handful of Whop REST API v1 endpoints whopfunnel uses.

Retries follow Whop's official SDKs: 408, 409, 429, 5xx and connection errors are
retried `max_retries` times, honouring `retry-after-ms` / `Retry-After` up to 60 s,
else backing off 0.5 s x 2^n (capped at 8 s) with jitter; `x-should-retry` overrides.
The API key never leaves the Authorization header: error texts and logs are redacted.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from ..clock import SystemClock
from ..errors import ConfigError, WhopAPIError

log = logging.getLogger("whopfunnel.whop")

DEFAULT_BASE_URL = "https://api.whop.com/api/v1"
RETRY_STATUSES = frozenset({408, 409, 429})
MAX_RETRY_AFTER = 60.0
INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 8.0
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
    """A small synchronous Whop API client; one instance per API key, safe to share."""

    def __init__(self, api_key: str, *, base_url: str = DEFAULT_BASE_URL,
                 transport: httpx.BaseTransport | None = None, timeout: float = 10.0,
                 max_retries: int = 2, api_version_date: str | None = None,
                 sleep: Callable[[float], Any] = time.sleep, rng: random.Random | None = None,
                 clock=None):
        if not api_key or not isinstance(api_key, str):
            raise ConfigError("a Whop API key is required")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock or SystemClock()  # only for Retry-After given as an HTTP date
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

    def open_dm_channel(self, user_id: str, company_id: str | None = None) -> str:
        """Open (or reuse) the DM channel with `user_id`; returns the channel id."""
        body: dict[str, Any] = {"with_user_ids": [user_id]}
        if company_id:
            body["company_id"] = company_id
        return _id(self._request("POST", "/dm_channels", json_body=body), "POST /dm_channels")

    def send_message(self, channel_id: str, content: str, *, idempotency_key: str) -> dict:
        """Post `content` to a channel; the key makes retries (ours and the outbox's) safe."""
        # The same header object goes out on every attempt, so retries can't double-send.
        result = self._request("POST", "/messages", json_body={"channel_id": channel_id, "content": content},
                               headers={"Idempotency-Key": idempotency_key})
        _id(result, "POST /messages")
        return result

    def list_messages(self, channel_id: str, *, after: str | None = None, first: int = 50) -> Page:
        """One page of a channel's messages, oldest first, after the cursor `after`."""
        params: dict[str, Any] = {"channel_id": channel_id, "first": first, "direction": "asc"}
        if after:
            params["after"] = after
        result = self._request("GET", "/messages", params=params)
        data, info = result.get("data"), result.get("page_info") or {}
        if not isinstance(data, list) or not isinstance(info, dict):
            raise WhopAPIError("GET /messages failed: response has no data list or page_info")
        end = info.get("end_cursor")
        return Page(data=[m for m in data if isinstance(m, dict)],
                    end_cursor=str(end) if end else None, has_next_page=bool(info.get("has_next_page")))

    def iter_messages(self, channel_id: str, *, after: str | None = None, page_size: int = 50,
                      max_pages: int | None = None) -> Iterator[tuple[dict, str | None]]:
        """Follow the cursor; yields (message, end cursor of its page) so callers can checkpoint."""
        pages = 0
        while max_pages is None or pages < max_pages:
            page = self.list_messages(channel_id, after=after, first=page_size)
            pages += 1
            for message in page.data:
                yield message, page.end_cursor
            # A cursor that doesn't move would loop forever on a misbehaving server.
            if not page.has_next_page or not page.end_cursor or page.end_cursor == after:
                return
            after = page.end_cursor

    def get_company(self, company_id: str) -> dict:
        return self._request("GET", f"/companies/{_segment(company_id)}")

    def company_owner_id(self, company_id: str) -> str:
        """The owner's user id; cached, owners rarely change and escalations repeat."""
        if company_id not in self._owners:
            owner = self.get_company(company_id).get("owner_user")
            if not isinstance(owner, dict) or not owner.get("id"):
                raise WhopAPIError(f"GET /companies/{company_id} failed: response has no owner_user.id")
            self._owners[company_id] = str(owner["id"])
        return self._owners[company_id]

    def post_notification(self, company_id: str, title: str, content: str,
                          user_ids: list[str] | None = None) -> dict:
        body: dict[str, Any] = {"company_id": company_id, "title": title, "content": content}
        if user_ids:
            body["user_ids"] = list(user_ids)
        return self._request("POST", "/notifications", json_body=body)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WhopClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, params: dict | None = None,
                 json_body: dict | None = None, headers: dict | None = None) -> dict:
        what = f"{method} {path}"
        retries = 0
        while True:
            try:
                response = self._http.request(method, path.lstrip("/"), params=params, json=json_body,
                                              headers=headers)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if retries < self.max_retries:
                    delay = self._backoff(retries)
                    log.info("%s: %s; retry %d of %d in %.2fs", what, self._redact(reason),
                             retries + 1, self.max_retries, delay)
                    self._sleep(delay)
                    retries += 1
                    continue
                # `from None`: the chained httpx error would print its own, unredacted text.
                raise WhopAPIError(self._redact(f"{what} failed: connection error: {reason}")) from None
            if response.is_success:
                return self._json(response, what)
            if retries < self.max_retries and _should_retry(response):
                delay = self._retry_after(response)
                if delay is None:
                    delay = self._backoff(retries)
                log.info("%s: HTTP %d; retry %d of %d in %.2fs", what, response.status_code,
                         retries + 1, self.max_retries, delay)
                self._sleep(delay)
                retries += 1
                continue
            raise self._error(response, what)

    def _backoff(self, retries: int) -> float:
        # Jitter shortens the wait by up to a quarter so clients don't retry in lockstep.
        return min(INITIAL_BACKOFF * 2 ** retries, MAX_BACKOFF) * (1 - 0.25 * self._rng.random())

    def _retry_after(self, response: httpx.Response) -> float | None:
        seconds: float | None = None
        ms = response.headers.get("retry-after-ms")
        if ms is not None:
            seconds = _float(ms)
            seconds = None if seconds is None else seconds / 1000
        if seconds is None and (value := response.headers.get("retry-after")) is not None:
            seconds = _float(value)
            if seconds is None:
                try:
                    when = parsedate_to_datetime(value)
                    if when.tzinfo is None:  # "-0000" means UTC, not local time
                        when = when.replace(tzinfo=timezone.utc)
                    seconds = when.timestamp() - self._clock.now().timestamp()
                except (TypeError, ValueError, IndexError, OverflowError):
                    seconds = None
        if seconds is None or not 0 <= seconds <= MAX_RETRY_AFTER:
            return None  # a long or absurd wait: fall back to our own backoff
        return seconds

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

    def _error(self, response: httpx.Response, what: str) -> WhopAPIError:
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
        return WhopAPIError(f"{what} failed: {status}: {short}" if short else f"{what} failed: {status}",
                            status_code=response.status_code, body=body)

    def _body(self, response: httpx.Response) -> str:
        try:
            text = response.text
        except (UnicodeDecodeError, LookupError):
            text = response.content.decode("utf-8", "replace")
        return self._redact(" ".join(text.split()))[:BODY_LIMIT]

    def _redact(self, text: str) -> str:
        return _BEARER.sub(r"\1" + REDACTED, text.replace(self._api_key, REDACTED))


def _should_retry(response: httpx.Response) -> bool:
    override = response.headers.get("x-should-retry", "").strip().lower()
    if override in ("true", "false"):
        return override == "true"
    return response.status_code in RETRY_STATUSES or response.status_code >= 500


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value else None  # NaN


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
