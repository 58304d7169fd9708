"""Logging for `whopfunnel serve`: a timestamp, the level and the logger on every line,
as text or as one JSON object per line, and secrets taken out of everything written.

Only the command line calls `configure()` (a library never configures logging: an
embedding host keeps its own). Redaction happens in the formatter, on the finished
line, tracebacks included, so no code path can print the API key, the webhook secret
or the database password, whatever it logs.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
MASK = "***"
# user:password@ in any URL, whatever else redaction knows
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*):(?P<pw>[^@/\s]+)@", re.I)
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def secrets_of(config, environ: Mapping[str, str]) -> list[str]:
    """The values that must never be written: the API key, the webhook secret (both as
    named in plugin.yaml) and the database URL's password."""
    from urllib.parse import urlparse

    found = [environ.get(config.api_key_env, ""), environ.get(config.webhook_secret_env, "")]
    try:
        found.append(urlparse(config.database_url(environ)).password or "")
    except ValueError:
        pass
    return [s for s in found if len(s) >= 4]  # a 1-3 character "secret" would mask everything


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()):
        # longest first, so a secret containing another is masked whole
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}:{MASK}@", text)


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor):
        super().__init__(TEXT)
        self.redact = redact

    def formatTime(self, record, datefmt=None):  # noqa: N802 - logging's name
        return _iso(record.created)

    def format(self, record) -> str:
        return self.redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the record's extra fields,
    and the traceback as `exc_info` text."""

    def __init__(self, redact: Redactor):
        super().__init__()
        self.redact = redact

    def format(self, record) -> str:
        line = {"time": _iso(record.created), "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value if isinstance(value, (int, float, bool, type(None))) else str(value)
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(line, ensure_ascii=False, default=str))


def configure(level: str = "INFO", fmt: str = "text", *, secrets: Iterable[str] = (),
              trace_hooks: bool = False, stream=None) -> Callable[[], None]:
    """Send every log record at `level` or above to `stream` (stderr), formatted and
    redacted. `trace_hooks` lets the hook tracer's DEBUG lines through at any level.
    Returns `restore()`, which puts logging back as it was."""
    if level.upper() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    redact = Redactor(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(redact) if fmt == "json" else TextFormatter(redact))
    handler._whopfunnel = True  # type: ignore[attr-defined] - ours, to replace next time
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_whopfunnel", False)]:
        root.removeHandler(old)
    touched = [root, logging.getLogger("httpx"), logging.getLogger("whopfunnel.plugins")]
    levels = [logger.level for logger in touched]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request at INFO; our own send line says more, once.
    touched[1].setLevel("DEBUG" if level.upper() == "DEBUG" else "WARNING")
    touched[2].setLevel("DEBUG" if trace_hooks else logging.NOTSET)

    def restore() -> None:
        root.removeHandler(handler)
        for logger, was in zip(touched, levels):
            logger.setLevel(was)

    return restore


def _iso(created: float) -> str:
    return datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds")
