"""Creating and migrating the schema (`whopfunnel db upgrade`), and checking it at start.

Version 1: the tables. Version 2: outbox and hook-call claims name the worker holding
them (`claimed_by`), so a live worker can renew its leases and a dead one's expire in
seconds; the database gets a random instance id for idempotency keys.
"""

from __future__ import annotations

import os

from peewee import CharField, DatabaseError, OperationalError, ProgrammingError
from playhouse.migrate import SchemaMigrator, migrate

from ..errors import SchemaOutOfDate, StorageError
from .database import redact_url
from .models import SCHEMA_VERSION


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


def upgrade(store) -> tuple[int, int]:
    """Create or migrate the schema; returns (version before, version after)."""
    before = version(store) or 0
    if before > SCHEMA_VERSION:
        raise SchemaOutOfDate(f"the database schema is version {before}, newer than this "
                              f"whopfunnel ({SCHEMA_VERSION}); upgrade whopfunnel")
    m = store.models

    def run():
        if before < 1:
            store.db.create_tables(m.all, safe=True)
        elif before < 2:
            _to_2(store)
        if _get(store, "instance_id") is None:
            _set(store, "instance_id", os.urandom(8).hex())
        _set(store, "schema_version", str(SCHEMA_VERSION))

    store.transaction(run)
    return before, SCHEMA_VERSION


def _to_2(store) -> None:
    migrator = SchemaMigrator.from_database(store.db)
    migrate(
        migrator.add_column("messages", "claimed_by", CharField(max_length=32, null=True)),
        migrator.add_index("messages", ("claimed_by",), False),
        migrator.add_column("pending_effects", "claimed_by", CharField(max_length=32, null=True)),
    )


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
