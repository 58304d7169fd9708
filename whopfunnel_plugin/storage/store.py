"""Peewee storage behind a DatabaseProxy: models, schema versions, tenant-scoped queries.

Guarantees rest on the database, not on check-then-insert:
- one active conversation per (experience, member): a unique index on
  (experience_id, active_user), where active_user is the member id while the
  conversation is active and NULL after (NULLs never collide on any engine);
- an inbound message is processed at most once: unique (experience_id, whop_message_id);
- concurrent replies never advance a conversation twice: the conversation row is read
  with SELECT ... FOR UPDATE (PostgreSQL, MariaDB) or inside BEGIN IMMEDIATE (SQLite),
  and the UPDATE also checks `revision` as a second line of defence.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from urllib.parse import urlparse

from peewee import (
    BooleanField,
    CharField,
    DatabaseError,
    DatabaseProxy,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    InterfaceError,
    Model,
    OperationalError,
    ProgrammingError,
    TextField,
)
from playhouse.db_url import connect

from ..errors import ConversationNotFound, SchemaOutOfDate, StorageError

database = DatabaseProxy()
SCHEMA_VERSION = 1
DEFAULT_URL = "sqlite:///whopfunnel.db"
ID = 128  # id columns: Whop ids are short; this leaves room and stays indexable on MariaDB


class UTCDateTime(DateTimeField):
    """Stored as naive UTC with microseconds on every engine; read back as aware UTC."""

    field_type = "DATETIME_US"

    def db_value(self, value):
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return super().db_value(value)

    def python_value(self, value):
        value = super().python_value(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class SchemaInfo(BaseModel):
    key = CharField(max_length=64, primary_key=True)
    value = CharField(max_length=255)

    class Meta:
        table_name = "whopfunnel_schema"


class FunnelVersion(BaseModel):
    """A funnel definition as a tenant first used it; conversations point at one forever."""

    experience_id = CharField(max_length=ID)
    funnel_id = CharField(max_length=ID)
    version = CharField(max_length=32)
    definition = TextField()
    created_at = UTCDateTime()

    class Meta:
        table_name = "funnels"
        indexes = ((("experience_id", "funnel_id", "version"), True),)


class ConversationRow(BaseModel):
    experience_id = CharField(max_length=ID)
    user_id = CharField(max_length=ID)
    active_user = CharField(max_length=ID, null=True)
    funnel_version = ForeignKeyField(FunnelVersion, backref="conversations",
                                     column_name="funnel_version_id")
    funnel_id = CharField(max_length=ID)
    block = CharField(max_length=ID)
    status = CharField(max_length=16)
    end_reason = CharField(max_length=32, null=True)
    invalid_count = IntegerField(default=0)
    variables = TextField(default="{}")
    owner_notified = BooleanField(default=False)
    reminder_sent = BooleanField(default=False)
    started_at = UTCDateTime()
    last_activity = UTCDateTime()
    expires_at = UTCDateTime(null=True)
    ended_at = UTCDateTime(null=True)
    revision = IntegerField(default=0)
    user_name = CharField(max_length=255, null=True)
    company_id = CharField(max_length=ID, null=True)
    product_id = CharField(max_length=ID, null=True)
    channel_id = CharField(max_length=ID, null=True)
    poll_cursor = CharField(max_length=255, null=True)

    class Meta:
        table_name = "conversations"
        indexes = (
            (("experience_id", "active_user"), True),
            (("active_user", "last_activity"), False),  # routing a DM across tenants
            (("experience_id", "user_id"), False),
            (("status", "expires_at"), False),
            (("status", "reminder_sent", "last_activity"), False),
        )


class MessageRow(BaseModel):
    """Inbound and outbound messages; outbound rows in status `pending` are the outbox."""

    experience_id = CharField(max_length=ID)
    conversation = ForeignKeyField(ConversationRow, null=True, backref="messages")
    direction = CharField(max_length=3)  # in | out
    user_id = CharField(max_length=ID)
    whop_message_id = CharField(max_length=ID, null=True)
    text = TextField()
    status = CharField(max_length=16)  # in: received | unrouted; out: pending | sent | failed
    recipient = CharField(max_length=8, default="member")  # out: member | owner
    title = CharField(max_length=255, null=True)  # owner messages: the Whop notification title
    attempts = IntegerField(default=0)
    next_attempt_at = UTCDateTime(null=True)
    idempotency_key = CharField(max_length=64, null=True, unique=True)
    last_error = TextField(null=True)
    created_at = UTCDateTime()
    sent_at = UTCDateTime(null=True)

    class Meta:
        table_name = "messages"
        indexes = (
            # Whop message ids are global: one DM must never be processed by two tenants
            # (a member's DM channel can be shared by experiences of one company).
            (("whop_message_id",), True),
            (("status", "next_attempt_at"), False),
            (("conversation", "recipient", "direction", "status"), False),
        )


class InteractionRow(BaseModel):
    """Every reply with how it was understood: the raw material of `whopfunnel stats`."""

    experience_id = CharField(max_length=ID)
    conversation = ForeignKeyField(ConversationRow, backref="interactions")
    message = ForeignKeyField(MessageRow, null=True)
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
        indexes = ((("experience_id", "funnel_id", "block"), False),)


class VisitRow(BaseModel):
    """A conversation entered a block (message blocks included): funnel reach."""

    experience_id = CharField(max_length=ID)
    conversation = ForeignKeyField(ConversationRow, backref="visits")
    funnel_id = CharField(max_length=ID)
    block = CharField(max_length=ID)
    created_at = UTCDateTime()

    class Meta:
        table_name = "visits"
        indexes = ((("experience_id", "funnel_id", "block"), False),)


class EffectRow(BaseModel):
    """A hook call owed after a commit (on_timeout, on_conversation_end, owner notify).

    Written in the same transaction as the state change, claimed with a lease, and
    deleted once fired, so a crash between commit and hook means a late call, not none.
    """

    experience_id = CharField(max_length=ID)
    conversation = ForeignKeyField(ConversationRow, backref="effects")
    kind = CharField(max_length=32)
    payload = TextField(default="{}")
    due_at = UTCDateTime(index=True)
    attempts = IntegerField(default=0)

    class Meta:
        table_name = "pending_effects"


class ProcessedEvent(BaseModel):
    webhook_id = CharField(max_length=191, primary_key=True)
    received_at = UTCDateTime()

    class Meta:
        table_name = "processed_events"


MODELS = (SchemaInfo, FunnelVersion, ConversationRow, MessageRow, InteractionRow, VisitRow,
          EffectRow, ProcessedEvent)
_FIELD_TYPES = {
    "sqlite": {"DATETIME_US": "DATETIME"},
    "postgres": {"DATETIME_US": "TIMESTAMP"},
    "mysql": {"DATETIME_US": "DATETIME(6)"},
}


def engine_of(url: str) -> str:
    try:
        scheme = urlparse(url).scheme.split("+")[0]
    except ValueError as exc:
        raise StorageError(f"bad database URL: {exc}") from None
    if scheme in ("postgres", "postgresql", "postgresext", "postgresqlext", "psycopg3"):
        return "postgres"
    if scheme in ("mysql", "mariadb", "mariadbconnector", "mysqlconnector"):
        return "mysql"
    if scheme == "sqlite":
        return "sqlite"
    raise StorageError(f"unsupported database URL scheme {scheme!r}; "
                       "use sqlite:///, postgresql:// or mysql://")


def open_database(url: str):
    """Connect with the settings each engine needs for our guarantees."""
    kind = engine_of(url)
    kwargs: dict = {"field_types": _FIELD_TYPES[kind]}
    if kind == "sqlite":
        # IMMEDIATE: a writer takes the lock at BEGIN, so two writers queue instead of
        # failing on lock upgrade; WAL lets readers run beside them.
        kwargs.update(lock_type="IMMEDIATE", pragmas={
            "journal_mode": "wal", "synchronous": "normal", "busy_timeout": 30000,
            "foreign_keys": 1,
        })
    if kind == "mysql":
        # READ COMMITTED, as on PostgreSQL: a row another transaction just committed (a
        # funnel version, a conversation) is visible to our next read, not hidden by
        # REPEATABLE READ's snapshot.
        kwargs.update(charset="utf8mb4",
                      init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    try:
        return connect(url, **kwargs)
    except Exception as exc:  # playhouse raises bare errors for unknown schemes/drivers
        raise StorageError(f"cannot open database {redact_url(url)}: "
                           f"{redact_text(str(exc), url)}") from None


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


_current: Store | None = None


class Store:
    """One database. `tenant(experience_id)` gives the scoped view every request uses."""

    def __init__(self, url: str = DEFAULT_URL):
        global _current
        # The models are bound through one DatabaseProxy, so a process works with one
        # database at a time: opening a second one while another is open would silently
        # send the first one's queries to it.
        if _current is not None and not _current.closed and _current.url != url:
            raise StorageError(f"another database ({redact_url(_current.url)}) is open in this "
                               "process; close it first (one database per process)")
        self.url = url
        self.engine = engine_of(url)
        self.db = open_database(url)
        self.closed = False
        database.initialize(self.db)
        _current = self
        self._statements = None

    @property
    def statements(self):
        """The reply path's prebuilt SQL for this database (see `statements.py`)."""
        if self._statements is None:
            from .statements import Statements

            self._statements = Statements(self.db, self.engine)
        return self._statements

    def __repr__(self) -> str:
        return f"Store({redact_url(self.url)!r})"

    def close(self) -> None:
        self.closed = True
        if not self.db.is_closed():
            self.db.close()

    def connect(self) -> None:
        """Open this thread's connection; a server that is down is one clear StorageError."""
        try:
            self.db.connect(reuse_if_open=True)
        except (OperationalError, InterfaceError, DatabaseError, TypeError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageError(f"cannot connect to the database {redact_url(self.url)}: "
                               f"{redact_text(reason, self.url)}") from None

    def atomic(self):
        return self.db.atomic()

    # -- schema -------------------------------------------------------------------------

    def schema_version(self) -> int | None:
        """The recorded schema version; None for a database without our schema."""
        self.connect()
        try:
            row = SchemaInfo.get_or_none(SchemaInfo.key == "schema_version")
        except (OperationalError, ProgrammingError):
            if self.db.in_transaction():
                self.db.rollback()
            return None
        except DatabaseError as exc:  # e.g. SQLite: "file is not a database"
            raise StorageError(f"cannot use the database {redact_url(self.url)}: {exc}") from None
        return int(row.value) if row else None

    def upgrade(self) -> tuple[int, int]:
        """Create or migrate the schema; returns (version before, version after)."""
        before = self.schema_version() or 0
        if before > SCHEMA_VERSION:
            raise SchemaOutOfDate(f"the database schema is version {before}, newer than this "
                                  f"whopfunnel ({SCHEMA_VERSION}); upgrade whopfunnel")
        with self.db.atomic():
            if before < 1:
                self.db.create_tables(MODELS, safe=True)
            # later versions: `if before < 2: migrate_to_2(self.db)` with playhouse.migrate
            SchemaInfo.delete().where(SchemaInfo.key == "schema_version").execute()
            SchemaInfo.create(key="schema_version", value=str(SCHEMA_VERSION))
        return before, SCHEMA_VERSION

    def check_schema(self) -> None:
        version = self.schema_version()
        if version != SCHEMA_VERSION:
            state = "has no whopfunnel schema" if version is None else f"is at schema version {version}"
            raise SchemaOutOfDate(f"the database {redact_url(self.url)} {state}; this whopfunnel "
                                  f"needs version {SCHEMA_VERSION}: run `whopfunnel db upgrade`")

    # -- scoping ------------------------------------------------------------------------

    def tenant(self, experience_id: str) -> Tenant:
        return Tenant(self, experience_id)

    def route_dm(self, user_id: str, channel_id: str | None = None) -> ConversationRow | None:
        """The active conversation a member's DM belongs to, across tenants, or None.

        Whop has one DM channel per member, so experiences of one company can share it:
        of the conversations bound to the channel, the one the member was most recently
        active in gets the message (only one ever does). A channel bound to none of them
        is routed only when the member has a single active conversation, not yet bound.
        """
        c = ConversationRow
        rows = list(c.select().where(c.active_user == user_id)
                    .order_by(c.last_activity.desc(), c.id.desc()).limit(50))
        bound = [r for r in rows if channel_id and r.channel_id == channel_id]
        if bound:
            return bound[0]
        if len(rows) == 1 and rows[0].channel_id is None:
            return rows[0]
        return None

    def queue_owner_message(self, conversation, *, text: str, title: str, key: str,
                            now: datetime) -> None:
        """Queue a DM (and Whop notification) to the owner in the conversation's owner lane;
        a second call with the same `key` finds the row already there."""
        MessageRow.insert(
            experience_id=conversation.experience_id, conversation=conversation.id,
            direction="out", user_id=conversation.user_id, recipient="owner", text=text,
            title=title, status="pending", next_attempt_at=now, created_at=now,
            idempotency_key=key,
        ).on_conflict_ignore().execute()

    def claim(self, query) -> list:
        """Rows for this worker only: SELECT ... FOR UPDATE SKIP LOCKED where the engine has
        it, so concurrent sweepers share the work; SQLite's IMMEDIATE lock covers it."""
        if self.engine == "sqlite":
            return list(query)
        return list(query.for_update("FOR UPDATE SKIP LOCKED"))


class Tenant:
    """Every query for one experience. Nothing here can reach another tenant's rows."""

    def __init__(self, store: Store, experience_id: str):
        self.store = store
        self.experience_id = experience_id

    def __repr__(self) -> str:
        return f"Tenant({self.experience_id!r})"

    def conversations(self):
        return ConversationRow.select().where(ConversationRow.experience_id == self.experience_id)

    def conversation(self, conversation_id: int) -> ConversationRow:
        row = self.conversations().where(ConversationRow.id == conversation_id).first()
        if row is None:
            raise ConversationNotFound(
                f"no conversation {conversation_id} in experience {self.experience_id}")
        return row

    def active(self, user_id: str, lock: bool = False) -> ConversationRow | None:
        """The member's active conversation here; `lock` reads it FOR UPDATE (where the
        engine has it). Prebuilt SQL: this runs on every reply."""
        return self.store.statements.active(self.experience_id, user_id, lock)

    def latest(self, user_id: str) -> ConversationRow | None:
        query = self.conversations().where(ConversationRow.user_id == user_id)
        return query.order_by(ConversationRow.id.desc()).first()

    def funnel_version(self, funnel, now: datetime) -> FunnelVersion:
        """The stored row for this exact definition, created on first use."""
        key = (FunnelVersion.experience_id == self.experience_id) & (
            FunnelVersion.funnel_id == funnel.id) & (FunnelVersion.version == funnel.version)
        row = FunnelVersion.get_or_none(key)
        if row is None:
            FunnelVersion.insert(
                experience_id=self.experience_id, funnel_id=funnel.id, version=funnel.version,
                definition=json.dumps(funnel.to_dict(), ensure_ascii=False), created_at=now,
            ).on_conflict_ignore().execute()
            row = FunnelVersion.get(key)
        return row

    def messages(self, conversation_id: int | None = None):
        query = MessageRow.select().where(MessageRow.experience_id == self.experience_id)
        if conversation_id is not None:
            query = query.where(MessageRow.conversation == conversation_id)
        return query.order_by(MessageRow.id)

    def interactions(self, conversation_id: int | None = None):
        query = InteractionRow.select().where(InteractionRow.experience_id == self.experience_id)
        if conversation_id is not None:
            query = query.where(InteractionRow.conversation == conversation_id)
        return query.order_by(InteractionRow.id)

    def pending_outbound(self, conversation_id: int | None = None):
        """The outbox, oldest first: the order members must receive messages in."""
        return self.messages(conversation_id).where(
            (MessageRow.direction == "out") & (MessageRow.status == "pending")
            & (MessageRow.recipient == "member"))

    def mark_sent(self, message: MessageRow, whop_message_id: str | None, now: datetime,
                  claim: datetime | None = None) -> None:
        """Mark delivered; with `claim`, only if our claim still holds (a worker whose
        lease ran out must not overwrite what the next one did)."""
        m = MessageRow
        where = (m.id == message.id) & (m.experience_id == self.experience_id)
        if claim is not None:
            where &= m.next_attempt_at == claim
        m.update(status="sent", whop_message_id=whop_message_id, sent_at=now,
                 attempts=m.attempts + 1).where(where).execute()
