"""A reply's whole write on PostgreSQL as one statement: one round trip, its own
transaction (with the read before it, two round trips per reply).

One data-modifying WITH statement: the revision-checked UPDATE (which also refuses a
message some conversation processed already), then, only if it updated the row, the
interaction (whose unique Whop message id is the dedupe), the visits, the outbox rows
and the owed hook calls. If the UPDATE took but the interaction did not (a concurrent
twin of the message landed in another conversation first), `whopfunnel_abort()` (made
by `db upgrade`) raises and the statement leaves nothing behind.

Taken for the common reply: one conversation, a member message, no owner notification
(whose payload quotes the member's last replies) and no split draw; the rest goes
through the general transaction in `writes.py`.
"""

from __future__ import annotations

from ..conversation.engine import NotifyOwner
from ..events import storable_text
from .records import update_values
from .statements import q
from .writes import Conflict, Duplicate, Written, effect_rows, idempotency_key

ABORT = "whopfunnel: duplicate message"
FUNCTION = ("CREATE OR REPLACE FUNCTION whopfunnel_abort(reason text) RETURNS integer "
            "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION USING MESSAGE = reason; END $$")


def suits(changes, delivery_id) -> bool:
    """Can this write go as the one statement?"""
    if len(changes) != 1 or delivery_id is not None:
        return False
    change = changes[0]
    return (change.new is None and change.inbound is not None
            and not change.decision.draws
            and not any(isinstance(e, NotifyOwner) for e in change.decision.effects))


class PgReply:
    """The statement, built per shape (visits, messages, hook calls in the decision)."""

    def __init__(self, sql):
        self.sql = sql
        self.db = sql.db
        self._shapes: dict[tuple[int, int, int], str] = {}
        self.casts = {}  # (table, column) -> SQL type, for the VALUES lists
        for model in (sql.models.interaction, sql.models.visit, sql.models.message,
                      sql.models.effect):
            for f in model._meta.sorted_fields:
                self.casts[(model._meta.table_name, f.column_name)] = _sql_type(self.db, f)

    def _values(self, table: str, columns, rows: int) -> str:
        row = "(" + ", ".join(f"CAST(%s AS {self.casts[(table, c)]})" for c in columns) + ")"
        return ", ".join([row] * rows)

    def statement(self, visits: int, messages: int, effects: int) -> str:
        key = (visits, messages, effects)
        found = self._shapes.get(key)
        if found is not None:
            return found
        sql, db = self.sql, self.db
        i_cols = sql.interaction.columns
        parts = [f"u AS ({sql.update_sql} AND NOT EXISTS (SELECT 1 FROM interactions"
                 f" WHERE whop_message_id = %s) RETURNING {q(db, 'id')})",
                 f"i AS (INSERT INTO interactions ({', '.join(q(db, c) for c in i_cols)})"
                 f" SELECT v.* FROM u, (VALUES {self._values('interactions', i_cols, 1)}) v"
                 f" ON CONFLICT DO NOTHING RETURNING {q(db, 'id')})"]
        for name, table, insert, rows in (("vs", "visits", sql.visit, visits),
                                          ("ms", "messages", sql.outbound, messages),
                                          ("es", "pending_effects", sql.effect, effects)):
            if not rows:
                continue
            cols = insert.columns
            returning = f" RETURNING {q(db, 'id')}" if name == "es" else ""
            parts.append(f"{name} AS (INSERT INTO {table} ({', '.join(q(db, c) for c in cols)})"
                         f" SELECT v.* FROM i, (VALUES {self._values(table, cols, rows)}) v"
                         f"{returning})")
        effect_ids = "ARRAY(SELECT id FROM es)" if effects else "ARRAY[]::integer[]"
        found = self._shapes[key] = (
            "WITH " + ", ".join(parts) + " SELECT (SELECT count(*) FROM u), (SELECT count(*)"
            f" FROM i), {effect_ids}, CASE WHEN (SELECT count(*) FROM u) = 1 AND (SELECT"
            f" count(*) FROM i) = 0 THEN whopfunnel_abort('{ABORT}') END")
        return found

    def write(self, change, *, now, queued_at, effects_due) -> Written:
        sql = self.sql
        record, decision, inbound = change.record, change.decision, change.inbound
        seen = decision.interaction
        values = update_values(record, decision.state, now, change.remind_at)
        params = sql.update_to_db(values)
        params += [record.id, record.revision, inbound.message_id]
        exp, conv, funnel = record.experience_id, record.id, record.funnel_id
        text = storable_text(inbound.text)
        params += sql.interaction.params((exp, conv, inbound.message_id, funnel, seen.block, text,
                                          seen.classification, seen.option, seen.attempt,
                                          seen.action, seen.how, now))
        for block in decision.entered:
            params += sql.visit.params((exp, conv, funnel, block, now))
        for message in decision.messages:
            params += sql.outbound.params((exp, conv, "out", record.user_id, message, "pending",
                                           queued_at, idempotency_key(), queued_at))
        owed = effect_rows(decision.effects, last_replies=None)
        for kind, payload in owed:
            params += sql.effect.params((exp, conv, kind, payload, effects_due))
        statement = self.statement(len(decision.entered), len(decision.messages), len(owed))
        try:
            updated, inserted, effect_ids, _ = self.db.execute_sql(statement, params).fetchone()
        except Exception as exc:
            if ABORT in str(exc):
                raise Duplicate() from None
            raise
        if not updated:
            raise Conflict()  # moved on, or the message was processed: read again
        return Written("ok", [record.evolve(**values)], list(effect_ids))


def _sql_type(db, field) -> str:
    """The column's SQL type as the database names it (for CASTs)."""
    kind = field.field_type
    types = {"AUTO": "INTEGER", "INT": "INTEGER", "BOOL": "BOOLEAN", "VARCHAR": "VARCHAR",
             "TEXT": "TEXT", "DATETIME_US": "TIMESTAMP"}
    return types.get(kind, db.field_types.get(kind, kind))

