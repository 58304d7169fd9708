"""The schema, as Peewee models defined afresh for each database (`define(db)`).

Every `Store` gets its own model classes bound to its own database, so a process can
hold several stores (several plugin managers) on different databases, from several
threads, and a query can only ever reach the database of the store that built it.

Guarantees rest on the database, not on check-then-insert:
- one active conversation per (experience, member): a unique index on
  (experience_id, active_user); active_user is the member id while the conversation
  is active and NULL after (NULLs never collide on any engine);
- an inbound message is processed at most once: its interaction row carries the Whop
  message id under a global unique index (a DM is processed by one conversation only);
- a conversation never advances twice: every UPDATE checks `revision`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from peewee import (
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

SCHEMA_VERSION = 2
ID = 128  # id columns: Whop ids are short; this leaves room and stays indexable on MariaDB
FIELD_TYPES = {
    "sqlite": {"DATETIME_US": "DATETIME"},
    "postgres": {"DATETIME_US": "TIMESTAMP"},
    "mysql": {"DATETIME_US": "DATETIME(6)"},
}


class UTCDateTime(DateTimeField):
    """Stored as naive UTC with microseconds on every engine; read back as aware UTC."""

    field_type = "DATETIME_US"

    def db_value(self, value):
        if value.__class__ is datetime:  # the hot path: our own aware UTC datetimes
            zone = value.tzinfo
            if zone is timezone.utc:
                return value.replace(tzinfo=None)
            if zone is not None:
                return value.astimezone(timezone.utc).replace(tzinfo=None)
            return value
        return super().db_value(value)

    def python_value(self, value):
        if value.__class__ is datetime:  # drivers that hand datetimes back (PostgreSQL, MariaDB)
            return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
        value = super().python_value(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class JSONText(TextField):
    """A JSON object stored as text; read back as a dict."""

    def db_value(self, value):
        return value if value is None or isinstance(value, str) else json.dumps(
            value, ensure_ascii=False)

    def python_value(self, value):
        return value if value is None or isinstance(value, dict) else json.loads(value)


@dataclass(frozen=True)
class Models:
    """One database's model classes."""

    schema: type[Model]
    funnel: type[Model]
    conversation: type[Model]
    message: type[Model]
    interaction: type[Model]
    visit: type[Model]
    effect: type[Model]
    delivery: type[Model]

    @property
    def all(self) -> tuple[type[Model], ...]:
        return (self.schema, self.funnel, self.conversation, self.message, self.interaction,
                self.visit, self.effect, self.delivery)


def define(db) -> Models:
    """Model classes bound to `db` alone."""

    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class SchemaInfo(Base):
        key = CharField(max_length=64, primary_key=True)
        value = CharField(max_length=255)

        class Meta:
            table_name = "whopfunnel_schema"

    class FunnelVersion(Base):
        """A funnel definition as a tenant first used it; conversations keep theirs."""

        experience_id = CharField(max_length=ID)
        funnel_id = CharField(max_length=ID)
        version = CharField(max_length=32)
        definition = TextField()
        created_at = UTCDateTime()

        class Meta:
            table_name = "funnels"
            indexes = ((("experience_id", "funnel_id", "version"), True),)

    class Conversation(Base):
        experience_id = CharField(max_length=ID)
        user_id = CharField(max_length=ID)
        active_user = CharField(max_length=ID, null=True)
        funnel_version = ForeignKeyField(FunnelVersion, column_name="funnel_version_id",
                                         index=False)
        funnel_id = CharField(max_length=ID)
        block = CharField(max_length=ID)
        status = CharField(max_length=16)
        end_reason = CharField(max_length=32, null=True)
        invalid_count = IntegerField(default=0)
        variables = JSONText(default="{}")
        owner_notified = BooleanField(default=False)
        reminder_sent = BooleanField(default=False)
        started_at = UTCDateTime()
        last_activity = UTCDateTime()
        expires_at = UTCDateTime(null=True)
        ended_at = UTCDateTime(null=True)
        # When the one reminder is due (NULL: none configured, sent, or ended): indexed on
        # its own, so with reminders off nothing in that index moves on a reply.
        remind_at = UTCDateTime(null=True)
        revision = IntegerField(default=0)
        user_name = CharField(max_length=255, null=True)
        company_id = CharField(max_length=ID, null=True)
        product_id = CharField(max_length=ID, null=True)
        channel_id = CharField(max_length=ID, null=True)
        poll_cursor = CharField(max_length=255, null=True)

        class Meta:
            table_name = "conversations"
            # Every index is written on every reply that moves a column in it, so there
            # are few, and none on last_activity (which every reply moves).
            indexes = (
                (("experience_id", "active_user"), True),
                (("active_user",), False),  # routing a DM across tenants
                (("experience_id", "user_id"), False),
                (("status", "expires_at"), False),  # the sweep
                (("remind_at",), False),
            )

    class Message(Base):
        """Outbound messages: rows not yet sent are the outbox. (Schema version 1 kept
        inbound messages here too; processed ones stay, read as already seen.)"""

        experience_id = CharField(max_length=ID)
        conversation = ForeignKeyField(Conversation, null=True, index=False)
        direction = CharField(max_length=3)  # in | out
        user_id = CharField(max_length=ID)
        whop_message_id = CharField(max_length=ID, null=True)
        text = TextField()
        status = CharField(max_length=16)  # pending | sent | failed (v1 inbound: received)
        recipient = CharField(max_length=8, default="member")  # out: member | owner
        title = CharField(max_length=255, null=True)  # owner messages: the notification title
        attempts = IntegerField(default=0)
        # Due time while waiting; while a worker holds the message, its lease's expiry.
        next_attempt_at = UTCDateTime(null=True)
        claimed_by = CharField(max_length=32, null=True)  # the worker holding it
        idempotency_key = CharField(max_length=64, null=True, unique=True)
        last_error = TextField(null=True)
        created_at = UTCDateTime()
        sent_at = UTCDateTime(null=True)

        class Meta:
            table_name = "messages"
            indexes = (
                (("whop_message_id",), True),  # the id Whop gave a sent message
                (("status", "next_attempt_at"), False),  # what is due
                (("conversation", "recipient", "direction", "status"), False),  # lane heads
            )

    class Interaction(Base):
        """Every member reply a conversation processed, with how it was understood: the
        dedupe of inbound messages and the raw material of the analytics."""

        experience_id = CharField(max_length=ID)
        conversation = ForeignKeyField(Conversation)
        # Global: one DM is processed by one conversation only (a member's DM channel can
        # be shared by experiences of one company). NULL for split draws.
        whop_message_id = CharField(max_length=ID, null=True)
        message = ForeignKeyField(Message, null=True, index=False)  # schema version 1 only
        funnel_id = CharField(max_length=ID)
        block = CharField(max_length=ID)
        text = TextField()
        classification = CharField(max_length=16)
        option_index = IntegerField(null=True)
        attempt = IntegerField(default=0)
        action = CharField(max_length=32, null=True)
        how = CharField(max_length=16, default="")
        created_at = UTCDateTime()

        class Meta:
            table_name = "interactions"
            indexes = ((("whop_message_id",), True),
                       (("experience_id", "funnel_id", "block"), False))

    class Visit(Base):
        """A conversation entered a block (message blocks included): funnel reach."""

        experience_id = CharField(max_length=ID)
        conversation = ForeignKeyField(Conversation)
        funnel_id = CharField(max_length=ID)
        block = CharField(max_length=ID)
        created_at = UTCDateTime()

        class Meta:
            table_name = "visits"
            indexes = ((("experience_id", "funnel_id", "block"), False),)

    class Effect(Base):
        """A hook call owed after a commit (on_timeout, on_conversation_end, owner notify):
        written with the state change, claimed with a lease, deleted once fired."""

        experience_id = CharField(max_length=ID)
        conversation = ForeignKeyField(Conversation)  # indexed: a conversation's calls in order
        kind = CharField(max_length=32)
        payload = JSONText(default="{}")
        due_at = UTCDateTime(index=True)  # due time; while claimed, the lease's expiry
        claimed_by = CharField(max_length=32, null=True)
        attempts = IntegerField(default=0)

        class Meta:
            table_name = "pending_effects"

    class ProcessedEvent(Base):
        webhook_id = CharField(max_length=191, primary_key=True)
        received_at = UTCDateTime()

        class Meta:
            table_name = "processed_events"

    return Models(SchemaInfo, FunnelVersion, Conversation, Message, Interaction, Visit, Effect,
                  ProcessedEvent)
