"""`Store`: one database, its own models, and the operations the service asks for by name.

Nothing outside `storage/` builds a query. A store never shares anything with another:
a process may hold several stores on different databases and use them from several
threads (each thread gets its own connection). A closed store refuses every call.

Connection trouble is handled here once: a connection the server dropped (a restart, a
network blip) is discarded and the operation tried once more on a fresh one; if the
database is still unreachable the caller gets `DatabaseUnavailable`, and the next call
reconnects. A transaction that lost a lock race is run again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from ..errors import ConversationNotFound, DatabaseUnavailable, StorageError
from . import pgreply, queries, schema, wal
from .bulk import Bulk
from .database import (
    DEFAULT_URL,
    engine_of,
    first_line,
    is_disconnect,
    is_lock_error,
    open_database,
    redact_text,
    redact_url,
)
from .effects import EffectQueue
from .group import GroupCommit
from .models import define
from .outbox import Outbox
from .records import to_snapshot
from .statements import Statements
from .writes import Change, Conflict, Duplicate, Written, apply

T = TypeVar("T")
_LOCK_RETRIES = 8


class Store:
    """One database. `tenant(experience_id)` gives the scoped reads admin and tests use."""

    def __init__(self, url: str = DEFAULT_URL):
        self.url = url
        self.engine = engine_of(url)
        self.db = open_database(url)
        self.models = define(self.db)
        self.sql = Statements(self.db, self.engine, self.models)
        self.bulk = Bulk(self.sql)
        self.outbox = Outbox(self)
        self.effects = EffectQueue(self)
        self.closed = False
        # PostgreSQL: a reply's write is one statement (two round trips with the read).
        self.pg = pgreply.PgReply(self.sql) if self.engine == "postgres" else None
        # SQLite has one writer at a time and pays per commit: every write of this process
        # goes through one queue, and writes that arrive together share one commit. (Left
        # to SQLite, a writer waiting for the lock sleeps in steps of up to 100 ms.)
        self.group = (GroupCommit(self._transaction, self.db.savepoint)
                      if self.engine == "sqlite" else None)
        self.checkpoints = wal.Checkpoints(self) if self.engine == "sqlite" else None
        self._versions: dict[tuple[str, str, str], int] = {}
        self._stored: dict[int, tuple[str, dict]] = {}
        self._instance: str | None = None

    def __repr__(self) -> str:
        return f"Store({redact_url(self.url)!r}{', closed' if self.closed else ''})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Refuse every further call and close this thread's connection."""
        self.closed = True
        self._discard_connection()

    # -- running operations ---------------------------------------------------------------

    def read(self, fn: Callable[[], T]) -> T:
        """Run a read; a dropped connection is replaced once."""
        return self._call(fn, write=False)

    def transaction(self, fn: Callable[[], T]) -> T:
        """Run `fn` in one transaction; again after a lost lock race or a dropped connection.
        On SQLite it may share the transaction (and the commit) with other threads' writes,
        inside a savepoint of its own: `fn` must not open another transaction itself."""
        if self.group is not None:
            return self.group.run(fn)
        return self._call(fn, write=True)

    def _transaction(self, fn: Callable[[], T]) -> T:
        return self._call(fn, write=True)

    def _call(self, fn, *, write: bool):
        if self.closed:
            raise StorageError("this store is closed")
        reconnected = False
        locked = 0
        while True:
            try:
                self._connect()
                if not write:
                    return fn()
                with self.db.atomic():
                    return fn()
            except (Conflict, Duplicate):
                raise
            except Exception as exc:
                if is_lock_error(exc) and locked < _LOCK_RETRIES:
                    locked += 1
                    continue
                if not is_disconnect(exc):
                    raise
                self._discard_connection()
                if reconnected:
                    raise DatabaseUnavailable(f"the database {redact_url(self.url)} is "
                                              f"unavailable: {self._reason(exc)}") from None
                reconnected = True

    def _connect(self) -> None:
        if not self.db.is_closed():
            return
        try:
            self.db.connect(reuse_if_open=True)
        except Exception as exc:  # noqa: BLE001 - every driver has its own error tree
            raise DatabaseUnavailable(f"cannot connect to the database {redact_url(self.url)}: "
                                      f"{self._reason(exc)}") from None

    def _discard_connection(self) -> None:
        """Forget this thread's connection, whatever state it is in."""
        state = self.db._state  # peewee keeps the connection per thread here
        conn = state.conn
        state.reset()
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a dead connection may refuse even this
                pass

    def _reason(self, exc: BaseException) -> str:
        return redact_text(first_line(exc), self.url)

    def defer_checkpoints(self) -> None:
        """SQLite: commits stop checkpointing the WAL; `checkpoint()` must be called
        instead, every second or so (`whopfunnel serve` does). No-op elsewhere."""
        if self.checkpoints is not None:
            self.checkpoints.defer()

    def checkpoint(self) -> int:
        """SQLite: copy the WAL back into the database, keeping the file bounded under
        steady writes (`storage/wal.py`); the frames it held. 0 elsewhere."""
        return self.checkpoints.run() if self.checkpoints is not None else 0

    def ping(self) -> None:
        """Raise DatabaseUnavailable unless the database answers."""
        self.read(lambda: self.db.execute_sql("SELECT 1").fetchone())

    # -- schema ---------------------------------------------------------------------------

    def schema_version(self) -> int | None:
        return schema.version(self)

    def upgrade(self, reminder: int | None = None) -> tuple[int, int]:
        """Create or migrate the schema; returns (version before, version after).
        `reminder` (seconds, plugin.yaml's) dates the reminders owed by conversations in
        flight when migrating from version 1."""
        return schema.upgrade(self, reminder)

    def check_schema(self) -> None:
        schema.check(self)

    @property
    def instance_id(self) -> str:
        """A random id given to this database at `db upgrade`: outbound idempotency keys
        that must be stable (owner messages) include it, so two databases sharing one
        Whop API key never reuse a key."""
        if self._instance is None:
            self._instance = schema.instance_id(self)
        return self._instance

    # -- conversations --------------------------------------------------------------------

    def lookup(self, experience_id: str, user_id: str, *, message_id: str | None = None,
               delivery_id: str | None = None):
        """(the member's active conversation here or None, `seen`, delivery seen?), in one
        round trip: the read before every reply and join. `seen` is None, "processed" (a
        conversation took this message already) or "ours" (our own sent message)."""
        return self.read(lambda: self.sql.lookup(experience_id, user_id, message_id, delivery_id))

    def active(self, experience_id: str, user_id: str):
        """The member's active conversation in this experience, or None."""
        return self.read(lambda: self.sql.one(self.sql.active_sql, (experience_id, user_id)))

    def conversation(self, experience_id: str, conversation_id: int):
        """A conversation of this experience by id; ConversationNotFound otherwise."""
        record = self.read(lambda: self.sql.one(self.sql.by_id_sql, (conversation_id,)))
        if record is None or record.experience_id != experience_id:
            raise ConversationNotFound(f"no conversation {conversation_id} in experience "
                                       f"{experience_id}")
        return record

    def route_dm(self, user_id: str, channel_id: str | None = None,
                 message_id: str | None = None):
        """(the active conversation a member's DM belongs to, across tenants, or None;
        `seen` as in `lookup`), in one round trip.

        Whop has one DM channel per member, so experiences of one company can share it:
        of the conversations bound to the channel, the one the member was most recently
        active in gets the message (only one ever does). A channel bound to none of them
        is routed only when the member has a single active conversation, not yet bound.
        """
        rows, seen = self.read(lambda: self.sql.routes(user_id, message_id))
        bound = [r for r in rows if channel_id and r.channel_id == channel_id]
        if bound:
            return bound[0], seen
        if len(rows) == 1 and rows[0].channel_id is None:
            return rows[0], seen
        return None, seen

    def funnel_version_id(self, experience_id: str, funnel, now: datetime) -> int:
        """The stored snapshot of this exact funnel definition for a tenant, made on first use."""
        key = (experience_id, funnel.id, funnel.version)
        found = self._versions.get(key)
        if found is None:
            found = self._versions[key] = self.transaction(
                lambda: queries.funnel_version(self, experience_id, funnel, now))
        return found

    def stored_funnel(self, version_id: int) -> tuple[str, dict]:
        """(version, definition in `Funnel.to_dict()` form) of a stored funnel snapshot."""
        found = self._stored.get(version_id)
        if found is None:
            found = self._stored[version_id] = self.read(
                lambda: queries.stored_funnel(self, version_id))
        return found

    def write(self, changes: Sequence[Change], *, now: datetime, queued_at: datetime | None = None,
              effects_due: datetime | None = None, delivery_id: str | None = None) -> Written:
        """Apply an event's changes in one transaction (see `writes.py`). `queued_at` is
        when its messages become due (the real time, even when `now` is pretended);
        `effects_due` when its owed hook calls become due for any worker to fire."""
        def run():
            return apply(self.sql, changes, now=now, queued_at=queued_at or now,
                         effects_due=effects_due or now, delivery_id=delivery_id)
        try:
            if self.pg is not None and pgreply.suits(changes, delivery_id):
                return self.read(lambda: self.pg.write(
                    changes[0], now=now, queued_at=queued_at or now, effects_due=effects_due or now))
            return self.transaction(run)
        except Conflict:
            return Written("conflict")
        except Duplicate:
            return Written("duplicate")

    def write_each(self, batch: Sequence[Change], *, now: datetime, queued_at: datetime,
                   effects_due: datetime) -> list[Written]:
        """Apply independent changes in one transaction; a conflicting one is skipped (it
        is rolled back to its savepoint), the others commit."""
        def run():
            results = []
            for change in batch:
                try:
                    with self.db.savepoint():
                        results.append(apply(self.sql, [change], now=now, queued_at=queued_at,
                                             effects_due=effects_due, delivery_id=None))
                except (Conflict, Duplicate):
                    results.append(Written("conflict"))
            return results
        return self.transaction(run)

    def record_delivery(self, delivery_id: str, now: datetime) -> bool:
        """Remember a webhook delivery that changes nothing (an ignored event); False when
        it was seen before."""
        return self.transaction(
            lambda: self.sql.insert_id(self.sql.delivery, (delivery_id, now)) is not None)

    def end_expired(self, now: datetime, limit: int, *, status: str, reason: str,
                    effects_due: datetime) -> list[tuple[int, str]]:
        """End up to `limit` active conversations whose `expires_at` has passed, in a few
        set-based statements (several sweepers share the work: SKIP LOCKED); their hook
        calls are owed in the same transaction. Returns (id, experience_id) of each."""
        return self.transaction(lambda: queries.end_expired(self, now, limit, status=status,
                                                           reason=reason, effects_due=effects_due))

    def due_reminders(self, now: datetime, limit: int) -> list:
        """Active conversations whose reminder is due (`remind_at` passed) and that have not
        expired yet."""
        return self.read(lambda: queries.due_reminders(self, now, limit))

    def snapshot(self, record, version: str | None = None):
        """The read-only `Conversation` hooks see."""
        if version is None:
            version = self.stored_funnel(record.funnel_version_id)[0]
        return to_snapshot(record, version)

    # -- polling --------------------------------------------------------------------------

    def poll_channels(self, after_id: int, limit: int) -> list[tuple[str, int]]:
        """(channel id, first conversation id) of DM channels with an active conversation,
        in id order after `after_id`, wrapping around: the poller's round robin."""
        return self.read(lambda: queries.poll_channels(self, after_id, limit))

    def poll_cursor(self, channel_id: str) -> str | None:
        return self.read(lambda: queries.poll_cursor(self, channel_id))

    def save_poll_cursor(self, channel_id: str, cursor: str) -> None:
        self.transaction(lambda: queries.save_poll_cursor(self, channel_id, cursor))

    # -- scoping --------------------------------------------------------------------------

    def tenant(self, experience_id: str):
        from .tenant import Tenant

        return Tenant(self, experience_id)

