"""The reply path's SQL, built once per database instead of once per call.

Peewee builds a statement's SQL on every call, and on the per-reply hot path that cost
dwarfs running it (a 23-column SELECT takes ~330 µs to build and ~8 µs to run). The few
statements every reply runs are therefore written out here once per `Store`, from the
Peewee models (table names, column names, defaults and value conversions all come from
the models, which stay the schema's source of truth), with the engine's own quoting and
placeholder, and run with `db.execute_sql(sql, params)`.

Each statement is the one Peewee would send, with the same guarantees:
- the active-conversation lookup is tenant-scoped and locks the row (FOR UPDATE) on
  PostgreSQL and MariaDB, as `Store.lock` does; SQLite's BEGIN IMMEDIATE covers it;
- the conversation UPDATE is revision-checked (the caller checks the row count);
- the inbound message INSERT reports a duplicate Whop message id (the global unique
  index) instead of failing, where the engine can do so without aborting the
  transaction (SQLite and PostgreSQL: ON CONFLICT DO NOTHING; MariaDB: the error of a
  single statement leaves the transaction usable), so no separate SELECT is needed.
"""

from __future__ import annotations

from peewee import BooleanField, CharField, ForeignKeyField, IntegerField, IntegrityError, TextField
from peewee import quote as _quote

from . import store as s

_MYSQL_DUPLICATE_KEY = 1062


# Values of these exact types come out of these fields' `db_value`/`python_value` as they
# went in (None always does), so the call is skipped for them; anything else (datetimes,
# SQLite's 0/1 for booleans, ...) goes through the field's own conversion.
_KEPT = ((CharField, str), (TextField, str), (BooleanField, bool), (IntegerField, int),
         (ForeignKeyField, int))


def converter(field, method: str):
    """`field.<method>` (db_value or python_value), minus the calls that change nothing."""
    convert = getattr(field, method)
    kept = next((t for cls, t in _KEPT if isinstance(field, cls)), None)
    if kept is None:
        return lambda v: v if v is None else convert(v)
    return lambda v: v if v is None or type(v) is kept else convert(v)


class Insert:
    """INSERT of one model's rows: `names` in this order, plus the fields that have a
    Python-side default (as `Model.create` and `insert_many` would add them)."""

    def __init__(self, db, model, names: tuple[str, ...], suffix: str = ""):
        meta = model._meta
        self.db, self.suffix = db, suffix
        fields = [meta.fields[n] for n in names]
        self.to_db = [converter(f, "db_value") for f in fields]
        defaults = [(f, d) for f, d in meta.defaults.items() if f.name not in names]
        self.defaults = [(f.db_value, d) for f, d in defaults]
        columns = [f.column_name for f in fields] + [f.column_name for f, _ in defaults]
        self.head = (f"INSERT INTO {q(db, meta.table_name)} "
                     f"({', '.join(q(db, c) for c in columns)}) VALUES ")
        self.row = "(" + ", ".join([db.param] * len(columns)) + ")"
        self._sql: dict[int, str] = {}  # rows per statement -> SQL

    def sql(self, rows: int) -> str:
        sql = self._sql.get(rows)
        if sql is None:
            sql = self._sql[rows] = self.head + ", ".join([self.row] * rows) + self.suffix
        return sql

    def params(self, values) -> list:
        out = [convert(v) for convert, v in zip(self.to_db, values)]
        out += [to_db(d() if callable(d) else d) for to_db, d in self.defaults]
        return out

    def execute(self, *rows):
        """Insert `rows` (tuples in `names` order) in one statement; returns the cursor."""
        params: list = []
        for values in rows:
            params += self.params(values)
        return self.db.execute_sql(self.sql(len(rows)), params)


def q(db, name: str) -> str:
    return _quote((name,), db.quote)


class Statements:
    """The prebuilt hot-path statements of one database (`Store.statements`)."""

    # The conversation's new state, as `Host._apply` writes it.
    UPDATE_NAMES = ("block", "status", "end_reason", "invalid_count", "variables",
                    "owner_notified", "reminder_sent", "last_activity", "expires_at",
                    "active_user", "ended_at", "channel_id", "revision")
    INBOUND_NAMES = ("experience_id", "conversation", "direction", "user_id",
                     "whop_message_id", "text", "status", "created_at")
    INTERACTION_NAMES = ("experience_id", "conversation", "message", "funnel_id", "block",
                         "text", "classification", "option_index", "attempt", "action",
                         "how", "created_at")
    VISIT_NAMES = ("experience_id", "conversation", "funnel_id", "block", "created_at")
    OUTBOUND_NAMES = ("experience_id", "conversation", "direction", "user_id", "text",
                      "status", "next_attempt_at", "idempotency_key", "created_at")

    def __init__(self, db, engine: str):
        self.db, self.engine = db, engine
        p = db.param
        c = s.ConversationRow
        table = q(db, c._meta.table_name)

        # The active conversation of (experience, member): every column, as a model row.
        fields = c._meta.sorted_fields
        self.conv_names = [f.name for f in fields]
        self.conv_from_db = [converter(f, "python_value") for f in fields]
        columns = ", ".join(q(db, f.column_name) for f in fields)
        self.active_sql = (f"SELECT {columns} FROM {table} WHERE {q(db, 'experience_id')} = {p}"
                           f" AND {q(db, c.active_user.column_name)} = {p} LIMIT 1")
        self.active_lock_sql = self.active_sql + ("" if engine == "sqlite" else " FOR UPDATE")

        # The revision-checked state change.
        update_fields = [c._meta.fields[n] for n in self.UPDATE_NAMES]
        self.update_to_db = [(f.name, converter(f, "db_value")) for f in update_fields]
        sets = ", ".join(f"{q(db, f.column_name)} = {p}" for f in update_fields)
        self.update_sql = (f"UPDATE {table} SET {sets} WHERE {q(db, c.id.column_name)} = {p}"
                           f" AND {q(db, c.revision.column_name)} = {p}")

        m = s.MessageRow
        suffix = {"sqlite": " ON CONFLICT DO NOTHING",
                  "postgres": f" ON CONFLICT DO NOTHING RETURNING {q(db, m.id.column_name)}"}
        self.inbound = Insert(db, m, self.INBOUND_NAMES, suffix.get(engine, ""))
        self.seen_sql = (f"SELECT 1 FROM {q(db, m._meta.table_name)} WHERE"
                         f" {q(db, m.whop_message_id.column_name)} = {p} AND"
                         f" {q(db, m.direction.column_name)} = {p} LIMIT 1")
        self.interaction = Insert(db, s.InteractionRow, self.INTERACTION_NAMES)
        self.visit = Insert(db, s.VisitRow, self.VISIT_NAMES)
        self.outbound = Insert(db, m, self.OUTBOUND_NAMES)

    def active(self, experience_id: str, user_id: str, lock: bool) -> s.ConversationRow | None:
        cursor = self.db.execute_sql(self.active_lock_sql if lock else self.active_sql,
                                     (experience_id, user_id))
        values = cursor.fetchone()
        if values is None:
            return None
        # What Peewee's ModelObjectCursorWrapper does: converted values, nothing dirty.
        row = s.ConversationRow(__no_default__=1)
        row.__data__ = {name: convert(v) for name, convert, v
                        in zip(self.conv_names, self.conv_from_db, values)}
        return row

    def update(self, row_id: int, revision: int, values: dict) -> int:
        """Write `values` (UPDATE_NAMES) if the row is still at `revision`; rows changed."""
        params = [convert(values[name]) for name, convert in self.update_to_db]
        params += [row_id, revision]
        return self.db.execute_sql(self.update_sql, params).rowcount

    def insert_inbound(self, values: tuple) -> int | None:
        """Store an inbound message (INBOUND_NAMES); its id, or None if its Whop message id
        was already processed (nothing is written then)."""
        try:
            cursor = self.inbound.execute(values)
        except IntegrityError as exc:
            if self.engine != "mysql" or not exc.args or exc.args[0] != _MYSQL_DUPLICATE_KEY:
                raise
            cursor = None
        if self.engine == "postgres":
            found = cursor.fetchone() if cursor is not None else None
            if found is not None:
                return found[0]
        elif cursor is not None and cursor.rowcount == 1:
            return cursor.lastrowid
        # Nothing inserted: the id is taken. By an inbound message: a duplicate. By anything
        # else (an outbound row): the unique index refuses it, as a plain INSERT would.
        whop_id = values[self.INBOUND_NAMES.index("whop_message_id")]
        if self.db.execute_sql(self.seen_sql, (whop_id, "in")).fetchone() is not None:
            return None
        raise IntegrityError(f"whop_message_id {whop_id!r} is already used by another message")
