"""Creating and migrating the schema (`whopfunnel db upgrade`), and checking it at start.

Version 1: the tables. Version 2:
- outbox and hook-call claims carry a token (`claimed_by`), so a live worker can renew
  its leases and a dead one's expire in seconds;
- a member message is recorded once, on its interaction (`interactions.whop_message_id`,
  unique): no separate inbound row (processed version-1 inbound rows stay and still
  count as processed; unrouted ones are deleted, so their ids are free again);
- `conversations.remind_at` says when a reminder is due (indexed alone), replacing an
  index that every reply rewrote; indexes nothing reads are dropped;
- the database gets a random instance id for idempotency keys.
A worker of version 1 still running while version 2 is installed keeps working (it
names its columns); see README "Upgrading".
"""

from __future__ import annotations

import os

from peewee import CharField, DatabaseError, OperationalError, ProgrammingError
from playhouse.migrate import SchemaMigrator, migrate

from ..errors import SchemaOutOfDate, StorageError
from . import pgreply
from .database import redact_url
from .models import SCHEMA_VERSION, UTCDateTime


def version(store) -> int | None:
    """The recorded schema version; None for a database without our schema."""
    info = store.models.schema

    def read():
        try:
            with store.db.atomic():  # a failed read must not poison an outer transaction
                row = info.get_or_none(info.key == "schema_version")
        except (OperationalError, ProgrammingError) as exc:
            if _missing_table(exc):
                return None
            raise
        return int(row.value) if row else None

    try:
        return store.read(read)
    except DatabaseError as exc:  # e.g. SQLite: "file is not a database"
        if isinstance(exc, (OperationalError, ProgrammingError)) and not _missing_table(exc):
            raise
        raise StorageError(f"cannot use the database {redact_url(store.url)}: {exc}") from None


def _missing_table(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(k in text for k in ("no such table", "does not exist", "doesn't exist", "1146"))


def upgrade(store, reminder: int | None = None) -> tuple[int, int]:
    """Create or migrate the schema; returns (version before, version after). `reminder`
    (plugin.yaml's, in seconds) dates the reminders of conversations in flight."""
    before = version(store) or 0
    if before > SCHEMA_VERSION:
        raise SchemaOutOfDate(f"the database schema is version {before}, newer than this "
                              f"whopfunnel ({SCHEMA_VERSION}); upgrade whopfunnel")
    m = store.models

    def run():
        if before < 1:
            store.db.create_tables(m.all, safe=True)
        elif before < 2:
            _to_2(store, reminder)
        if store.engine == "postgres":  # the one-statement reply write aborts through it
            store.db.execute_sql(pgreply.FUNCTION)
        if _get(store, "instance_id") is None:
            _set(store, "instance_id", os.urandom(8).hex())
        _set(store, "schema_version", str(SCHEMA_VERSION))

    store.transaction(run)
    return before, SCHEMA_VERSION


def _to_2(store, reminder: int | None) -> None:
    migrator = SchemaMigrator.from_database(store.db)
    mysql = store.engine == "mysql"  # InnoDB keeps an index on every foreign key column
    migrate(
        migrator.add_column("messages", "claimed_by", CharField(max_length=32, null=True)),
        migrator.add_column("pending_effects", "claimed_by", CharField(max_length=32, null=True)),
        migrator.add_column("interactions", "whop_message_id", CharField(max_length=128, null=True)),
        migrator.add_column("conversations", "remind_at", UTCDateTime(null=True)),
    )
    db = store.db
    db.execute_sql("UPDATE interactions SET whop_message_id = (SELECT m.whop_message_id FROM "
                   "messages m WHERE m.id = interactions.message_id) WHERE message_id IS NOT NULL")
    db.execute_sql("DELETE FROM messages WHERE direction = 'in' AND status = 'unrouted'")
    if reminder:
        due = {"sqlite": f"datetime(last_activity, '+{int(reminder)} seconds')",
               "postgres": f"last_activity + interval '{int(reminder)} seconds'",
               "mysql": f"last_activity + INTERVAL {int(reminder)} SECOND"}[store.engine]
        db.execute_sql(f"UPDATE conversations SET remind_at = {due} WHERE status = 'active' "
                       "AND reminder_sent = %s" % ("0" if store.engine != "postgres" else "false"))
    drops = ["conversations_active_user_last_activity",
             "conversations_status_reminder_sent_last_activity", "messages_conversation_id"]
    if not mysql:
        drops += ["conversations_funnel_version_id", "interactions_message_id"]
    migrate(
        migrator.add_index("interactions", ("whop_message_id",), True),
        migrator.add_index("conversations", ("active_user",), False),
        migrator.add_index("conversations", ("remind_at",), False),
        *[migrator.drop_index(table_of(name), name) for name in drops],
    )


def table_of(index: str) -> str:
    return next(t for t in ("conversations", "messages", "interactions", "pending_effects")
                if index.startswith(t + "_"))


def _get(store, key: str) -> str | None:
    info = store.models.schema
    row = info.get_or_none(info.key == key)
    return row.value if row else None


def _set(store, key: str, value: str) -> None:
    info = store.models.schema
    info.delete().where(info.key == key).execute()
    info.create(key=key, value=value)


def check(store) -> None:
    found = version(store)
    if found != SCHEMA_VERSION:
        state = "has no whopfunnel schema" if found is None else f"is at schema version {found}"
        raise SchemaOutOfDate(f"the database {redact_url(store.url)} {state}; this whopfunnel "
                              f"needs version {SCHEMA_VERSION}: run `whopfunnel db upgrade`")


def instance_id(store) -> str:
    found = store.read(lambda: _get(store, "instance_id"))
    if found is None:
        raise SchemaOutOfDate(f"the database {redact_url(store.url)} has no instance id: "
                              "run `whopfunnel db upgrade`")
    return found
