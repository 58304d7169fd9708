"""The set-based statements of the sweep and of hook-call firing, written out once.

A sweep of 10,000 expired conversations must cost about what one indexed UPDATE of those
rows costs (SPEC §11), so nothing here works row by row or builds SQL per call: a batch
is a few statements whose text (an IN list of n placeholders) is made once per n.
"""

from __future__ import annotations

from datetime import datetime

from .statements import q

SKIP_LOCKED = {"postgres": " FOR UPDATE SKIP LOCKED", "mysql": " FOR UPDATE SKIP LOCKED"}


class Bulk:
    def __init__(self, sql):
        self.sql, db, self.engine = sql, sql.db, sql.engine
        p, self.p = db.param, db.param
        self._lists: dict[int, str] = {}
        c, e = (q(db, sql.models.conversation._meta.table_name),
                q(db, sql.models.effect._meta.table_name))
        skip = SKIP_LOCKED.get(self.engine, "")
        to_db = sql.models.conversation.ended_at.db_value
        self.stamp = lambda when: to_db(when)
        self.expired_sql = (f"SELECT id, experience_id FROM {c} WHERE status = 'active' AND"
                            f" expires_at <= {p} ORDER BY expires_at LIMIT {p}{skip}")
        self.end_sql = (f"UPDATE {c} SET status = {p}, end_reason = {p}, active_user = NULL,"
                        f" ended_at = {p}, remind_at = NULL, revision = revision + 1"
                        " WHERE id IN ")
        # An ended conversation's owed hook calls, made by the database from its row.
        self.owe_sql = (f"INSERT INTO {e} (experience_id, conversation_id, kind, payload, due_at,"
                        f" attempts) SELECT experience_id, id, {p}, {p}, {p}, 0 FROM {c}"
                        " WHERE id IN ")
        # A conversation's calls fire in the order their changes committed: only the oldest
        # call still owed for a conversation may be claimed (the next one waits until it
        # is settled), whichever worker holds it.
        first = (f"NOT EXISTS (SELECT 1 FROM {e} older WHERE older.conversation_id ="
                 f" {e}.conversation_id AND older.id < {e}.id)")
        claim = f"UPDATE {e} SET claimed_by = {p}, due_at = {p}, attempts = attempts + 1 WHERE "
        self.mysql = self.engine == "mysql"  # no subquery on the table an UPDATE changes
        if self.mysql:  # so the ids are read (and locked) first, then updated
            self.due_ids_sql = (f"SELECT id FROM {e} WHERE due_at <= {p} AND {first}"
                                f" ORDER BY id LIMIT {p}{skip}")
            self.free_ids_sql = (f"SELECT id FROM {e} WHERE claimed_by IS NULL AND {first}"
                                 " AND id IN ")
            self.claim_ids_sql = claim + "id IN "
        else:
            self.claim_due_sql = claim + (f"id IN (SELECT id FROM {e} WHERE due_at <= {p}"
                                          f" AND {first} ORDER BY id LIMIT {p}{skip})")
            self.claim_ids_sql = claim + f"claimed_by IS NULL AND {first} AND id IN "
        # A read first: most wakes find nothing due, and a claim is a write (on SQLite it
        # takes the database's one write lock).
        self.any_due_sql = f"SELECT 1 FROM {e} WHERE due_at <= {p} LIMIT 1"
        self.claimed_sql = (f"SELECT id, conversation_id, kind, payload, attempts FROM {e}"
                            f" WHERE claimed_by = {p} ORDER BY id")
        self.finish_sql = f"DELETE FROM {e} WHERE claimed_by = {p} AND id IN "
        fields = sql.models.conversation._meta.sorted_fields
        columns = ", ".join(f"c.{q(db, f.column_name)}" for f in fields)
        self.records_sql = f"SELECT {columns} FROM {c} c WHERE c.id IN "
        self.payload = sql.models.effect.payload.python_value

    def in_list(self, n: int) -> str:
        found = self._lists.get(n)
        if found is None:
            found = self._lists[n] = "(" + ", ".join([self.p] * n) + ")"
        return found

    def run(self, text: str, params):
        return self.sql.db.execute_sql(text, params)

    # -- the sweep ------------------------------------------------------------------------

    def end_expired(self, now: datetime, limit: int, status: str, reason: str,
                    effect_rows, effects_due: datetime) -> list[tuple[int, str]]:
        """Inside a transaction: end up to `limit` expired conversations and owe their
        hook calls (`effect_rows`: the (kind, payload) each owes). (id, experience_id)."""
        rows = self.run(self.expired_sql, (self.stamp(now), limit)).fetchall()
        if not rows:
            return []
        ids = [r[0] for r in rows]
        in_ids = self.in_list(len(ids))
        self.run(self.end_sql + in_ids, [status, reason, self.stamp(now), *ids])
        to_json = self.sql.models.effect.payload.db_value
        due = self.stamp(effects_due)
        for kind, payload in effect_rows:  # one statement per kind: timeouts fire first
            self.run(self.owe_sql + in_ids, [kind, to_json(payload), due, *ids])
        return [(cid, exp) for cid, exp in rows]

    # -- owed hook calls --------------------------------------------------------------------

    def any_due(self, now: datetime) -> bool:
        return self.run(self.any_due_sql, (self.stamp(now),)).fetchone() is not None

    def claim_effects(self, token: str, until: datetime, now: datetime, ids, limit: int) -> list:
        """Inside a transaction: claim owed calls (these `ids` if unclaimed, else up to `limit`
        due ones) under `token`; their rows (id, conversation_id, kind, payload, attempts)."""
        if self.mysql:
            if ids is not None:
                ids = list(ids)
                found = self.run(self.free_ids_sql + self.in_list(len(ids)) + " FOR UPDATE", ids)
            else:
                found = self.run(self.due_ids_sql, (self.stamp(now), limit))
            ids = [r[0] for r in found.fetchall()]
            taken = ids and self.run(self.claim_ids_sql + self.in_list(len(ids)),
                                     [token, self.stamp(until), *ids]).rowcount
        elif ids is not None:
            ids = list(ids)
            taken = self.run(self.claim_ids_sql + self.in_list(len(ids)),
                             [token, self.stamp(until), *ids]).rowcount
        else:
            taken = self.run(self.claim_due_sql, (token, self.stamp(until), self.stamp(now),
                                                  limit)).rowcount
        if not taken:
            return []
        return [(i, conv, kind, self.payload(payload), attempts) for i, conv, kind, payload, attempts
                in self.run(self.claimed_sql, (token,)).fetchall()]

    def finish_effects(self, token: str, ids) -> None:
        ids = list(ids)
        for start in range(0, len(ids), 1000):
            part = ids[start:start + 1000]
            self.run(self.finish_sql + self.in_list(len(part)), [token, *part])

    def records(self, ids) -> dict:
        """Conversation records by id."""
        ids, found = sorted(set(ids)), {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            for values in self.run(self.records_sql + self.in_list(len(part)), part).fetchall():
                record = self.sql.record(values)
                found[record.id] = record
        return found
