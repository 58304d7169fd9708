"""The hot path's SQL, built once per database instead of once per call.

Peewee builds a statement's SQL on every call, and on the per-reply hot path that cost
dwarfs running it (a 23-column SELECT takes ~330 µs to build and ~8 µs to run). The few
statements every reply and webhook runs are therefore written out here once per
`Store`, from its models (table and column names, defaults and value conversions all
come from the models, which stay the schema's source of truth), with the engine's own
quoting and placeholder, and run with `db.execute_sql(sql, params)`.
"""

from __future__ import annotations

from peewee import BooleanField, CharField, ForeignKeyField, IntegerField, IntegrityError, TextField
from peewee import quote as _quote

from .records import UPDATE_FIELDS, record_type

_MYSQL_DUPLICATE_KEY = 1062
# Values of these exact types come out of these fields' `db_value`/`python_value` as they
# went in (None always does), so the call is skipped for them; anything else (datetimes,
# SQLite's 0/1 for booleans, JSON text, ...) goes through the field's own conversion.
_KEPT = {CharField: str, TextField: str, BooleanField: bool, IntegerField: int,
         ForeignKeyField: int}


def converter(field, method: str):
    """`field.<method>` (db_value or python_value), minus the calls that change nothing."""
    convert = getattr(field, method)
    kept = _KEPT.get(type(field))
    if kept is None:
        return lambda v: v if v is None else convert(v)
    return lambda v: v if v is None or type(v) is kept else convert(v)


def row_converter(fields, method: str, source: str = "values[{i}]"):
    """One function converting a whole row (a tuple, or a dict by name with
    source="values[{name!r}]") into a list, each value through `converter`'s rule, written
    out as one expression per column instead of a call per column: the hot path converts
    dozens of values per reply."""
    namespace, items = {}, []
    for i, field in enumerate(fields):
        value = source.format(i=i, name=field.name)
        kept = _KEPT.get(type(field))
        namespace[f"c{i}"] = getattr(field, method)
        if kept is None:
            items.append(f"(None if (v := {value}) is None else c{i}(v))")
        else:
            namespace[f"t{i}"] = kept
            items.append(f"(v if (v := {value}) is None or v.__class__ is t{i} else c{i}(v))")
    code = "def convert(values):\n    return [" + ", ".join(items) + "]\n"
    exec(compile(code, f"<row converter {method}>", "exec"), namespace)  # noqa: S102 - our own code
    return namespace["convert"]


def q(db, name: str) -> str:
    return _quote((name,), db.quote)


class Insert:
    """INSERT of one model's rows: `names` in this order, plus the fields that have a
    Python-side default (as `Model.create` and `insert_many` would add them)."""

    def __init__(self, db, model, names: tuple[str, ...], suffix: str = "",
                 skip_duplicates: bool = False):
        meta = model._meta
        self.db, self.names, self.suffix = db, names, suffix
        # A duplicate key inserts nothing instead of failing (SQLite and PostgreSQL say so
        # in `suffix`: ON CONFLICT DO NOTHING; on MariaDB the failed statement leaves the
        # transaction usable, so the error is caught instead).
        self.skip_duplicates = skip_duplicates
        fields = [meta.fields[n] for n in names]
        self.to_db = row_converter(fields, "db_value")
        defaults = [(f, d) for f, d in meta.defaults.items() if f.name not in names]
        self.defaults = [(f.db_value, d) for f, d in defaults]
        columns = [f.column_name for f in fields] + [f.column_name for f, _ in defaults]
        self.columns = columns
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
        out = self.to_db(values)
        out += [to_db(d() if callable(d) else d) for to_db, d in self.defaults]
        return out

    def execute(self, *rows):
        """Insert `rows` (tuples in `names` order) in one statement; returns the cursor."""
        params: list = []
        for values in rows:
            params += self.params(values)
        return self.db.execute_sql(self.sql(len(rows)), params)


class Statements:
    """The prebuilt statements of one database."""

    INTERACTION = ("experience_id", "conversation", "whop_message_id", "funnel_id", "block",
                   "text", "classification", "option_index", "attempt", "action", "how",
                   "created_at")
    VISIT = ("experience_id", "conversation", "funnel_id", "block", "created_at")
    OUTBOUND = ("experience_id", "conversation", "direction", "user_id", "text", "status",
                "next_attempt_at", "idempotency_key", "created_at")
    EFFECT = ("experience_id", "conversation", "kind", "payload", "due_at")
    NEW = ("experience_id", "user_id", "active_user", "funnel_version", "funnel_id", "block",
           "status", "end_reason", "invalid_count", "variables", "owner_notified",
           "reminder_sent", "started_at", "last_activity", "expires_at", "ended_at",
           "user_name", "company_id", "product_id", "channel_id", "remind_at", "revision")

    def __init__(self, db, engine: str, models):
        self.db, self.engine, self.models = db, engine, models
        p = db.param
        c, m, i = models.conversation, models.message, models.interaction
        self.Record = record_type(c)
        table = q(db, c._meta.table_name)

        # A conversation row, every column, as a record.
        fields = c._meta.sorted_fields
        self.from_db = row_converter(fields, "python_value")
        columns = ", ".join(f"c.{q(db, f.column_name)}" for f in fields)
        self.width = len(fields)
        base = f"SELECT {columns} FROM {table} c"
        self.active_sql = (f"{base} WHERE c.{q(db, 'experience_id')} = {p}"
                           f" AND c.{q(db, 'active_user')} = {p}")
        self.by_id_sql = f"{base} WHERE c.{q(db, 'id')} = {p}"
        # The read before a reply, in one round trip: the member's active conversation
        # (if any); whether the message was processed already (an interaction carries its
        # id; schema version 1 kept it on an inbound messages row) or is one of our own
        # sent messages; and whether the webhook delivery was seen.
        processed = (f"(SELECT 1 FROM {q(db, i._meta.table_name)} WHERE"
                     f" {q(db, 'whop_message_id')} = {p})")
        ours = (f"(SELECT {q(db, 'direction')} FROM {q(db, m._meta.table_name)} WHERE"
                f" {q(db, 'whop_message_id')} = {p})")
        events = q(db, models.delivery._meta.table_name)
        seen_delivery = f"(SELECT 1 FROM {events} WHERE {q(db, 'webhook_id')} = {p})"
        lookup = f"SELECT {columns}, {processed}, {ours}, {seen_delivery}"
        self.lookup_sql = (f"{lookup} FROM (SELECT 1 AS one) o LEFT JOIN {table} c ON"
                           f" c.{q(db, 'experience_id')} = {p} AND c.{q(db, 'active_user')} = {p}")
        # The same for a DM that names no experience: every active conversation of the
        # member (the router picks one), each row with the same three flags.
        self.route_sql = (f"{lookup} FROM {table} c WHERE c.{q(db, 'active_user')} = {p}"
                          f" ORDER BY c.{q(db, 'last_activity')} DESC, c.{q(db, 'id')} DESC"
                          " LIMIT 50")

        # The revision-checked state change.
        update_fields = [c._meta.fields[n] for n in UPDATE_FIELDS]
        self.update_to_db = row_converter(update_fields, "db_value", "values[{name!r}]")
        sets = ", ".join(f"{q(db, f.column_name)} = {p}" for f in update_fields)
        self.update_sql = (f"UPDATE {table} SET {sets} WHERE {q(db, 'id')} = {p}"
                           f" AND {q(db, 'revision')} = {p}")

        returning = {"postgres": f" RETURNING {q(db, 'id')}"}.get(engine, "")
        ignore = {"sqlite": " ON CONFLICT DO NOTHING",
                  "postgres": f" ON CONFLICT DO NOTHING RETURNING {q(db, 'id')}"}
        self.new = Insert(db, c, self.NEW, returning)
        # The interaction of a member message is its dedupe: a Whop message id processed
        # before inserts nothing.
        self.interaction = Insert(db, i, self.INTERACTION, ignore.get(engine, ""),
                                  skip_duplicates=True)
        self.visit = Insert(db, models.visit, self.VISIT)
        self.outbound = Insert(db, m, self.OUTBOUND)
        self.effect = Insert(db, models.effect, self.EFFECT, returning)
        ignore_delivery = {"sqlite": " ON CONFLICT DO NOTHING", "postgres":
                           f" ON CONFLICT DO NOTHING RETURNING {q(db, 'webhook_id')}"}
        self.delivery = Insert(db, models.delivery, ("webhook_id", "received_at"),
                               ignore_delivery.get(engine, ""), skip_duplicates=True)
        # The head of each of a conversation's two outbox lanes, in one statement.
        heads = []
        for lane in ("member", "owner"):
            heads.append(
                f"SELECT * FROM (SELECT {q(db, 'id')}, {q(db, 'recipient')}, {q(db, 'text')},"
                f" {q(db, 'title')}, {q(db, 'attempts')}, {q(db, 'status')},"
                f" {q(db, 'idempotency_key')}, {q(db, 'next_attempt_at')}, {q(db, 'experience_id')}"
                f" FROM {q(db, m._meta.table_name)} WHERE {q(db, 'conversation_id')} = {p} AND"
                f" {q(db, 'recipient')} = '{lane}' AND {q(db, 'direction')} = 'out' AND"
                f" {q(db, 'status')} IN ('pending', 'failed') ORDER BY {q(db, 'id')} LIMIT 1)"
                f" {lane}_head")
        self.heads_sql = " UNION ALL ".join(heads)
        self.next_attempt = converter(m._meta.fields["next_attempt_at"], "python_value")
        self.last_replies_sql = (
            f"SELECT {q(db, 'text')} FROM {q(db, i._meta.table_name)} WHERE"
            f" {q(db, 'conversation_id')} = {p} AND {q(db, 'whop_message_id')} IS NOT NULL"
            f" ORDER BY {q(db, 'id')} DESC LIMIT {p}")

    # -- reads ----------------------------------------------------------------------------

    def record(self, values):
        return self.Record(*self.from_db(values))

    def one(self, sql: str, params):
        values = self.db.execute_sql(sql, params).fetchone()
        return None if values is None else self.record(values)

    def records(self, query) -> list:
        """Records for a Peewee query selecting every conversation column, in order."""
        text, params = query.sql()
        return [self.record(values) for values in self.db.execute_sql(text, params).fetchall()]

    def _flags(self, values) -> tuple[str | None, bool]:
        """What a lookup row says of the message (`seen`) and the delivery."""
        w = self.width
        if values[w] is not None or values[w + 1] == "in":
            seen = "processed"
        elif values[w + 1] is not None:
            seen = "ours"  # one of our own sent messages, echoed back
        else:
            seen = None
        return seen, values[w + 2] is not None

    def lookup(self, experience_id: str, user_id: str, message_id: str | None,
               delivery_id: str | None):
        """(the member's active conversation or None, `seen`, delivery seen?); `seen` is
        None, "processed" (a conversation took this message already) or "ours"."""
        values = self.db.execute_sql(self.lookup_sql, (message_id, message_id, delivery_id,
                                                       experience_id, user_id)).fetchone()
        record = None if values[0] is None else self.record(values[:self.width])
        return (record, *self._flags(values))

    def routes(self, user_id: str, message_id: str | None = None):
        """(the member's active conversations, most recently active first; `seen`)."""
        cursor = self.db.execute_sql(self.route_sql, (message_id, message_id, None, user_id))
        rows = cursor.fetchall()
        seen = self._flags(rows[0])[0] if rows else None
        return [self.record(values[:self.width]) for values in rows], seen

    # -- writes ---------------------------------------------------------------------------

    def update(self, row_id: int, revision: int, values: dict) -> int:
        """Write `values` (UPDATE_FIELDS) if the row is still at `revision`; rows changed."""
        params = self.update_to_db(values)
        params += [row_id, revision]
        return self.db.execute_sql(self.update_sql, params).rowcount

    def insert_id(self, insert: Insert, *rows) -> int | None:
        """Run an INSERT and return the new row's id (None: a skipped duplicate)."""
        try:
            cursor = insert.execute(*rows)
        except IntegrityError as exc:
            if (insert.skip_duplicates and self.engine == "mysql" and exc.args
                    and exc.args[0] == _MYSQL_DUPLICATE_KEY):
                return None
            raise
        if self.engine == "postgres":
            found = cursor.fetchone()
            return found[0] if found is not None else None
        return cursor.lastrowid if cursor.rowcount == 1 else None

    def insert_ids(self, insert: Insert, rows) -> list[int]:
        """Insert rows one statement; their ids, in order."""
        if not rows:
            return []
        cursor = insert.execute(*rows)
        if self.engine == "postgres":
            return [r[0] for r in cursor.fetchall()]
        if self.engine == "mysql":  # lastrowid is the first of a multi-row insert
            return list(range(cursor.lastrowid, cursor.lastrowid + len(rows)))
        last = cursor.lastrowid  # SQLite: the last one; the batch is contiguous
        return list(range(last - len(rows) + 1, last + 1))

    def last_replies(self, conversation_id: int, count: int) -> list[str]:
        rows = self.db.execute_sql(self.last_replies_sql, (conversation_id, count)).fetchall()
        return [r[0] for r in reversed(rows)]
