"""Opening a database by URL, with the settings our guarantees need, and telling apart
the errors a caller must handle differently: a lost race, a lost connection."""

from __future__ import annotations

from urllib.parse import urlparse

from peewee import DatabaseError, InterfaceError, OperationalError
from playhouse.db_url import connect

from ..errors import StorageError
from .models import FIELD_TYPES

DEFAULT_URL = "sqlite:///whopfunnel.db"
SCHEMES = {
    "sqlite": "sqlite",
    "postgres": "postgres", "postgresql": "postgres", "postgresext": "postgres",
    "postgresqlext": "postgres", "psycopg3": "postgres",
    "mysql": "mysql", "mariadb": "mysql", "mariadbconnector": "mysql", "mysqlconnector": "mysql",
}
_LOCKED = ("deadlock", "lock wait", "database is locked", "could not serialize",
           "database table is locked")
# What drivers say when the server went away (restart, network blip, idle kill).
_GONE = ("server closed the connection", "connection already closed", "terminating connection",
         "the connection is closed", "could not connect", "connection refused",
         "connection reset", "lost connection", "server has gone away", "(0, '')",
         "broken pipe", "no connection to the server", "can't connect", "connection timed out",
         "ssl syscall error", "server closed", "cannot operate on a closed database",
         "the database system is shutting down", "the database system is starting up",
         "timeout expired", "not currently accepting connections")
_GONE_CODES = (2003, 2006, 2013, 2014, 4031)  # MySQL client error numbers


def engine_of(url: str) -> str:
    """'sqlite', 'postgres' or 'mysql' for a database URL; StorageError otherwise."""
    try:
        scheme = urlparse(url).scheme.split("+")[0]
    except ValueError as exc:
        raise StorageError(f"bad database URL: {exc}") from None
    if scheme not in SCHEMES:
        raise StorageError(f"unsupported database URL scheme {scheme!r}; "
                           "use sqlite:///, postgresql:// or mysql://")
    return SCHEMES[scheme]


SQLITE_BUSY_TIMEOUT_MS = 30_000


def open_database(url: str):
    """A Peewee database (not yet connected) for `url`."""
    kind = engine_of(url)
    kwargs: dict = {"field_types": FIELD_TYPES[kind]}
    if kind == "sqlite":
        # IMMEDIATE: a writer takes the lock at BEGIN, so two writers queue instead of
        # failing on lock upgrade; WAL lets readers run beside them.
        kwargs.update(lock_type="IMMEDIATE", pragmas={
            "journal_mode": "wal", "synchronous": "normal", "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
            "foreign_keys": 1,
        })
    if kind == "postgres":
        kwargs.setdefault("connect_timeout", 5)
    if kind == "mysql":
        # READ COMMITTED, as on PostgreSQL: a row another transaction just committed is
        # visible to our next read, not hidden by REPEATABLE READ's snapshot.
        kwargs.update(charset="utf8mb4", connect_timeout=5,
                      init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    try:
        return connect(url, **kwargs)
    except Exception as exc:  # playhouse raises bare errors for unknown schemes/drivers
        raise StorageError(f"cannot open database {redact_url(url)}: "
                           f"{redact_text(str(exc), url)}") from None


def is_lock_error(exc: BaseException) -> bool:
    """A lost race for a lock: running the transaction again is the cure."""
    text = str(exc).lower()
    return isinstance(exc, (OperationalError, DatabaseError)) and any(k in text for k in _LOCKED)


def is_disconnect(exc: BaseException) -> bool:
    """The connection is gone (or the server is unreachable): reconnecting is the cure."""
    if not isinstance(exc, (OperationalError, InterfaceError, DatabaseError)):
        return False
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if code in _GONE_CODES:
        return True
    text = str(exc).lower()
    if isinstance(exc, InterfaceError) and not text.strip():
        return True
    return any(k in text for k in _GONE)


def _password(url: str) -> str | None:
    try:
        return urlparse(url).password
    except ValueError:
        return None


def redact_url(url: str) -> str:
    password = _password(url)
    return url.replace(f":{password}@", ":***@") if password else url


def redact_text(text: str, url: str) -> str:
    """A driver's message with the URL's password taken out, should it repeat it."""
    password = _password(url)
    return text.replace(password, "***") if password else text


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
