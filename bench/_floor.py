"""The floor: raw stdlib `sqlite3` doing a reply's durable writes by hand, one commit each.

Per reply, in `BEGIN IMMEDIATE ... COMMIT` (WAL, synchronous=NORMAL, as the Store uses):
find the member's active conversation, insert the inbound message row, the
version-checked UPDATE of the conversation, one interaction row, one outbox row.

The schema is a frozen copy of whopfunnel's tables and indexes as of this harness
(`conversations`, `messages`, `interactions`), so the floor stays the same yardstick
whatever the package's storage becomes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from datetime import datetime, timedelta, timezone

from _workload import VALID, Driver, experience, user_id

SCHEMA = """
CREATE TABLE conversations (id INTEGER NOT NULL PRIMARY KEY, experience_id VARCHAR(128) NOT NULL,
  user_id VARCHAR(128) NOT NULL, active_user VARCHAR(128), funnel_version_id INTEGER NOT NULL,
  funnel_id VARCHAR(128) NOT NULL, block VARCHAR(128) NOT NULL, status VARCHAR(16) NOT NULL,
  end_reason VARCHAR(32), invalid_count INTEGER NOT NULL, variables TEXT NOT NULL,
  owner_notified INTEGER NOT NULL, reminder_sent INTEGER NOT NULL, started_at DATETIME NOT NULL,
  last_activity DATETIME NOT NULL, expires_at DATETIME, ended_at DATETIME, revision INTEGER NOT NULL,
  user_name VARCHAR(255), company_id VARCHAR(128), product_id VARCHAR(128), channel_id VARCHAR(128),
  poll_cursor VARCHAR(255));
CREATE INDEX conversations_funnel_version_id ON conversations (funnel_version_id);
CREATE UNIQUE INDEX conversations_experience_id_active_user ON conversations (experience_id, active_user);
CREATE INDEX conversations_active_user_last_activity ON conversations (active_user, last_activity);
CREATE INDEX conversations_experience_id_user_id ON conversations (experience_id, user_id);
CREATE INDEX conversations_status_expires_at ON conversations (status, expires_at);
CREATE INDEX conversations_status_reminder_sent_last_activity
  ON conversations (status, reminder_sent, last_activity);
CREATE TABLE messages (id INTEGER NOT NULL PRIMARY KEY, experience_id VARCHAR(128) NOT NULL,
  conversation_id INTEGER REFERENCES conversations (id), direction VARCHAR(3) NOT NULL,
  user_id VARCHAR(128) NOT NULL, whop_message_id VARCHAR(128), text TEXT NOT NULL,
  status VARCHAR(16) NOT NULL, recipient VARCHAR(8) NOT NULL, title VARCHAR(255),
  attempts INTEGER NOT NULL, next_attempt_at DATETIME, idempotency_key VARCHAR(64), last_error TEXT,
  created_at DATETIME NOT NULL, sent_at DATETIME);
CREATE INDEX messages_conversation_id ON messages (conversation_id);
CREATE UNIQUE INDEX messages_idempotency_key ON messages (idempotency_key);
CREATE UNIQUE INDEX messages_whop_message_id ON messages (whop_message_id);
CREATE INDEX messages_status_next_attempt_at ON messages (status, next_attempt_at);
CREATE INDEX messages_conversation_id_recipient_direction_status
  ON messages (conversation_id, recipient, direction, status);
CREATE TABLE interactions (id INTEGER NOT NULL PRIMARY KEY, experience_id VARCHAR(128) NOT NULL,
  conversation_id INTEGER NOT NULL REFERENCES conversations (id), message_id INTEGER REFERENCES messages (id),
  funnel_id VARCHAR(128) NOT NULL, block VARCHAR(128) NOT NULL, text TEXT NOT NULL,
  classification VARCHAR(16) NOT NULL, option_index INTEGER, attempt INTEGER NOT NULL,
  action VARCHAR(32), how VARCHAR(16) NOT NULL, created_at DATETIME NOT NULL);
CREATE INDEX interactions_conversation_id ON interactions (conversation_id);
CREATE INDEX interactions_message_id ON interactions (message_id);
CREATE INDEX interactions_experience_id_funnel_id_block ON interactions (experience_id, funnel_id, block);
"""
NEXT = {"q1": "q2", "q2": "years", "years": "q1"}
PROMPT = {"q1": "Which topic interests you?\n\n1. Trading\n2. Crypto\n3. I'm done",
          "q2": "And how experienced are you?\n\n1. Beginner\n2. Advanced\n3. I'm done",
          "years": "How many years have you been at it? (a number)"}


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")


def connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in ("journal_mode=wal", "synchronous=normal", "busy_timeout=30000", "foreign_keys=1"):
        db.execute(f"PRAGMA {pragma}")
    return db


class Floor:
    def __init__(self, path: str, members: int, seed: int = 1):
        self.db = connect(path)
        self.db.executescript(SCHEMA)
        now = datetime.now(timezone.utc)
        start, expires = stamp(now), stamp(now + timedelta(hours=24))
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT INTO conversations (experience_id, user_id, active_user, funnel_version_id,"
            " funnel_id, block, status, invalid_count, variables, owner_notified, reminder_sent,"
            " started_at, last_activity, expires_at, revision, user_name) VALUES"
            " (?, ?, ?, 1, 'bench', 'q1', 'active', 0, '{}', 0, 0, ?, ?, ?, 0, ?)",
            ((experience(u), user_id(u), user_id(u), start, start, expires, f"Member {u}")
             for u in range(members)))
        self.db.execute("COMMIT")
        self._start(members, seed)

    @classmethod
    def attach(cls, path: str, members: int, seed: int) -> Floor:
        """Another connection to a floor database already made, as its own replier."""
        floor = cls.__new__(cls)
        floor.db = connect(path)
        floor._start(members, seed)
        return floor

    def _start(self, members: int, seed: int) -> None:
        self.members, self.seed = members, seed
        self.tag = f"{os.getpid()}_{seed}_{time.time_ns() % 10**9}"
        self.seq = 0

    def describe(self) -> str:
        return "raw sqlite3, 5 statements + BEGIN IMMEDIATE/COMMIT per reply"

    def run(self, seconds: float, start_at: float | None = None) -> dict:
        db = self.db
        self.seed += 1
        driver = Driver(range(self.members), self.seed)
        n = 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            user, text = driver.next()
            now = datetime.now(timezone.utc)
            ts = stamp(now)
            self.seq += 1
            db.execute("BEGIN IMMEDIATE")
            exp, uid = experience(user), user_id(user)
            conv, block, invalid, variables, revision = db.execute(
                "SELECT id, block, invalid_count, variables, revision FROM conversations"
                " WHERE experience_id = ? AND active_user = ?", (exp, uid)).fetchone()
            inbound = db.execute(
                "INSERT INTO messages (experience_id, conversation_id, direction, user_id, whop_message_id,"
                " text, status, recipient, attempts, created_at) VALUES (?, ?, 'in', ?, ?, ?, 'received',"
                " 'member', 0, ?)", (exp, conv, uid, f"f{self.tag}_{self.seq}", text, ts)).lastrowid
            valid = text in VALID
            new_block = NEXT[block] if valid else ("q1" if invalid == 3 else block)
            new_invalid = 0 if valid or invalid == 3 else invalid + 1
            variables = json.dumps(json.loads(variables))
            if db.execute(
                    "UPDATE conversations SET block = ?, invalid_count = ?, variables = ?,"
                    " last_activity = ?, expires_at = ?, revision = ? WHERE id = ? AND revision = ?",
                    (new_block, new_invalid, variables, ts, stamp(now + timedelta(hours=24)),
                     revision + 1, conv, revision)).rowcount != 1:
                raise RuntimeError("floor: revision check failed")
            db.execute(
                "INSERT INTO interactions (experience_id, conversation_id, message_id, funnel_id, block,"
                " text, classification, option_index, attempt, action, how, created_at)"
                " VALUES (?, ?, ?, 'bench', ?, ?, ?, ?, ?, ?, ?, ?)",
                (exp, conv, inbound, block, text, "valid" if valid else "invalid",
                 VALID.index(text) if valid else None, new_invalid, None if valid else "reprompt",
                 "number" if valid else "", ts))
            db.execute(
                "INSERT INTO messages (experience_id, conversation_id, direction, user_id, text, status,"
                " recipient, attempts, next_attempt_at, idempotency_key, created_at)"
                " VALUES (?, ?, 'out', ?, ?, 'pending', 'member', 0, ?, ?, ?)",
                (exp, conv, uid, PROMPT[new_block], ts, f"{time.time_ns():x}{os.urandom(8).hex()}", ts))
            db.execute("COMMIT")
            n += 1
        took = time.perf_counter() - start
        return {"n": n, "seconds": took, "rate": n / took, "valid": driver.valid}

    def close(self) -> None:
        self.db.close()
