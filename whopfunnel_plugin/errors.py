"""The exceptions whopfunnel raises, as one tree.

    WhopFunnelError
    ├── FunnelError          a funnel file has problems (each with file:line:column)
    ├── ConfigError          plugin.yaml or the environment is wrong (names the key)
    ├── StorageError         the database cannot be used as asked
    │   ├── SchemaOutOfDate  the schema needs `whopfunnel db upgrade`
    │   └── DatabaseUnavailable  the database is unreachable now; try again shortly
    ├── ConversationNotFound no such conversation in this tenant
    ├── ManagerClosed        the plugin manager was closed; it refuses every call
    ├── WebhookError         a webhook delivery cannot be accepted (`status` is the HTTP answer)
    │   ├── SignatureError   401: missing headers, bad or stale signature
    │   ├── PayloadError     400: not UTF-8, not JSON, or a field of the wrong type
    │   └── PayloadTooLarge  413: body over the size limit
    └── WhopAPIError         the Whop API answered with an error (status_code, body)
        └── RetryLater       worth trying again later, not now (`retry_after` seconds or None)

Only `cli/` turns these into one-line messages and exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass


class WhopFunnelError(Exception):
    """Base class of every error whopfunnel raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One finding of the funnel validator."""

    file: str
    line: int
    column: int
    message: str
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.column}: {prefix}{self.message}"


class FunnelError(WhopFunnelError):
    """A funnel file failed validation; `problems` lists every finding."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def file(self) -> str:
        return self.problems[0].file if self.problems else ""

    @property
    def line(self) -> int:
        return self.problems[0].line if self.problems else 0

    @property
    def column(self) -> int:
        return self.problems[0].column if self.problems else 0


class ConfigError(WhopFunnelError):
    """plugin.yaml, a command-line option or the environment is wrong."""


class StorageError(WhopFunnelError):
    """The database cannot be used as asked."""


class SchemaOutOfDate(StorageError):
    """The database schema is older (or newer) than this version of whopfunnel."""


class DatabaseUnavailable(StorageError):
    """The database cannot be reached right now (a restart, a network blip); the next
    call reconnects. Webhooks answer 503 with Retry-After meanwhile."""


class ManagerClosed(WhopFunnelError):
    """A closed plugin manager was called."""


class ConversationNotFound(WhopFunnelError):
    """No conversation with that id exists in this tenant."""


class WebhookError(WhopFunnelError):
    """A webhook delivery cannot be accepted; `status` is the HTTP status to answer."""

    status = 400


class SignatureError(WebhookError):
    """Signature headers are missing, malformed, stale, or match no signature."""

    status = 401


class PayloadError(WebhookError):
    """The body is not UTF-8 JSON of the expected shape."""

    status = 400


class PayloadTooLarge(WebhookError):
    """The body is larger than the limit."""

    status = 413


class WhopAPIError(WhopFunnelError):
    """The Whop API answered with an error status (the body is already redacted)."""

    def __init__(self, message: str, status_code: int | None = None, body: str = ""):
        self.status_code = status_code
        self.body = body
        super().__init__(message)


class RetryLater(WhopAPIError):
    """A retryable failure (408/409/429/5xx, a connection error, the request budget) that
    the client did not retry in-process; `retry_after` is Whop's requested wait in seconds
    (None when it named none), so a caller can defer the work instead of sleeping."""

    def __init__(self, message: str, status_code: int | None = None, body: str = "",
                 retry_after: float | None = None):
        super().__init__(message, status_code=status_code, body=body)
        self.retry_after = retry_after
