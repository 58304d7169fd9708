"""The one place that wires storage, the engine and the callbacks together.

Every event runs in one transaction: read (and lock) the conversation, let the pure
engine decide, write the new state with a revision check, the interaction row, the
outbound messages (the outbox) and the hook calls owed (pending effects). Hooks fire
after the commit; a crash before they fire leaves their rows for the next sweep.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from peewee import IntegrityError, OperationalError

from ..clock import SystemClock
from ..conversation.engine import DEFAULT_TIMEOUT, Context, Decision, Engine, State
from ..events import Conversation, MemberJoined, MembershipEnded, MessageReceived
from ..funnel.model import Funnel
from ..storage import store as s
from .effects import Effects

log = logging.getLogger("whopfunnel")
_RETRIES = 8


class Callbacks:
    """What the host calls out to. The plugin manager provides a hook-backed one."""

    def on_invalid_response(self, conversation, reply, attempt, step):
        return None

    def on_timeout(self, conversation) -> None:
        pass

    def on_conversation_end(self, conversation) -> None:
        pass

    def on_owner_notify(self, conversation, reason, block, last_replies) -> None:
        pass

    def template_vars(self, conversation) -> dict:
        return {}

    has_template_vars = False  # True when template_vars may return something


@dataclass(frozen=True)
class Outcome:
    """What handling one event did. `status` is one of: started, kept, restarted,
    advanced, duplicate, unrouted, ended, inactive, no_funnel."""

    status: str
    conversation: Conversation | None = None
    messages: tuple[str, ...] = ()
    decision: Decision | None = None


@dataclass
class SweepResult:
    ended: Counter = field(default_factory=Counter)  # experience_id -> conversations ended
    reminded: int = 0
    hooks_recovered: int = 0

    @property
    def total(self) -> int:
        return sum(self.ended.values())


class _Conflict(Exception):
    """The conversation changed under us: run the transaction again."""


def view(row: s.ConversationRow, version: str) -> Conversation:
    return Conversation(
        id=row.id, experience_id=row.experience_id, user_id=row.user_id,
        funnel_id=row.funnel_id, funnel_version=version, block=row.block,
        status=row.status, end_reason=row.end_reason, invalid_count=row.invalid_count,
        variables=json.loads(row.variables), started_at=row.started_at,
        last_activity=row.last_activity, expires_at=row.expires_at, ended_at=row.ended_at,
        user_name=row.user_name, company_id=row.company_id, product_id=row.product_id,
        channel_id=row.channel_id,
    )


def to_state(row: s.ConversationRow) -> State:
    return State(
        block=row.block, last_activity=row.last_activity, expires_at=row.expires_at,
        status=row.status, end_reason=row.end_reason, invalid_count=row.invalid_count,
        variables=MappingProxyType(json.loads(row.variables)),
        owner_notified=row.owner_notified, reminder_sent=row.reminder_sent,
    )


class Host:
    """Runs funnels on a store. `route(event)` picks the funnel id a join starts."""

    def __init__(
        self,
        store: s.Store,
        funnels: Mapping[str, Funnel],
        *,
        clock=None,
        timeout: int = DEFAULT_TIMEOUT,
        reminder: int | None = None,
        validators: Mapping[str, Callable] | None = None,
        route: Callable[[MemberJoined], str | None] | None = None,
        callbacks: Callbacks | None = None,
        batch_size: int = 500,
    ):
        self.store = store
        self.funnels = dict(funnels)
        self.clock = clock or SystemClock()
        self.timeout = timeout
        self.reminder = reminder
        self.validators = dict(validators or {})
        self.route = route or self._only_funnel
        self.callbacks = callbacks or Callbacks()
        self.batch_size = batch_size
        # True: hook calls fire in the caller's thread right after the commit (embedding).
        # False: they are left due at once for `fire_due()`, run by the server's job thread.
        self.inline_effects = True
        self._engines: dict[int, Engine] = {}
        self.effects = Effects(store, self)

    def _only_funnel(self, event: MemberJoined) -> str | None:
        return next(iter(self.funnels)) if len(self.funnels) == 1 else None

    # -- events ---------------------------------------------------------------------------

    def join(self, event: MemberJoined) -> Outcome:
        funnel_id = event.funnel_id or self.route(event)
        funnel = self.funnels.get(funnel_id) if funnel_id else None
        if funnel is None:
            log.warning("no funnel for member %s joining experience %s (product %s); add a route",
                        event.user_id, event.experience_id, event.product_id)
            return Outcome("no_funnel")
        return self._run(lambda: self._join(event, funnel))

    def message(self, event: MessageReceived) -> Outcome:
        # Plugins' template variables are gathered before the transaction, so no plugin
        # code runs while the conversation row (or SQLite's write lock) is held for it.
        extra: Mapping[str, object] = {}
        if self.callbacks.has_template_vars:
            current = self.store.tenant(event.experience_id).active(event.user_id)
            extra = self._vars(self.view_of(current)) if current is not None else {}
        return self._run(lambda: self._message(event, extra))

    def end(self, event: MembershipEnded | None = None, *, experience_id: str | None = None,
            user_id: str | None = None, reason: str = "membership_ended") -> Outcome:
        """End a member's active conversation from outside the funnel."""
        exp = event.experience_id if event else experience_id
        user = event.user_id if event else user_id
        delivery = event.delivery_id if event else None
        return self._run(lambda: self._end(exp, user, reason, delivery))

    def fire_due(self) -> int:
        """Fire every hook call that is due (deferred ones, and ones a crash left behind)."""
        now = self.clock.now()
        return self._fire(self.effects.due(now), now)

    def prompt(self, experience_id: str, user_id: str) -> tuple[str, ...]:
        """What the member's active conversation is waiting for, to show it again."""
        row = self.store.tenant(experience_id).active(user_id)
        if row is None:
            return ()
        ctx = Context(row.user_id, row.experience_id, row.user_name, self._vars(self.view_of(row)))
        return self._engine(row.funnel_version_id).prompt(to_state(row), ctx)

    def sweep(self, now: datetime | None = None) -> SweepResult:
        """End expired conversations, send due reminders, fire hook calls left by a crash."""
        now = now or self.clock.now()
        result = SweepResult()
        result.hooks_recovered = self._fire(self.effects.due(now), now)
        while True:
            ended, effects = self._run(lambda: self._expire_batch(now))
            for conv in ended:
                result.ended[conv.experience_id] += 1
            if self.inline_effects:
                self._fire(effects, now)
            if len(ended) < self.batch_size:
                break
        if self.reminder:
            while True:
                count = self._run(lambda: self._remind_batch(now))
                result.reminded += count
                if count < self.batch_size:
                    break
        return result

    # -- transactions ---------------------------------------------------------------------

    def _run(self, fn):
        """Run `fn` in a transaction, again on a lost race; fire its hook calls after."""
        for attempt in range(_RETRIES):
            try:
                with self.store.atomic():
                    result = fn()
            except (_Conflict, IntegrityError):
                continue
            except OperationalError as exc:
                if not _is_lock_error(exc) or attempt == _RETRIES - 1:
                    raise
                continue
            if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], Outcome):
                outcome, effects = result
                if self.inline_effects:
                    self._fire(effects, self.clock.now())
                return outcome
            return result
        raise s.StorageError("a conversation kept changing under concurrent updates; "
                             f"gave up after {_RETRIES} attempts")

    def _join(self, event: MemberJoined, funnel: Funnel):
        now = self.clock.now()
        if self._seen(event.delivery_id, now):
            return Outcome("duplicate"), []
        tenant = self.store.tenant(event.experience_id)
        effects: list[int] = []
        status = "started"
        existing = tenant.active(event.user_id, lock=True)
        if existing is not None:
            engine = self._engine(existing.funnel_version_id)
            state = to_state(existing)
            if existing.expires_at is not None and now >= existing.expires_at:
                effects += self._apply(existing, engine.timeout_decision(state), now)
            elif funnel.on_rejoin == "restart":
                effects += self._apply(existing, engine.end(state, "abandoned", "manual"), now)
                status = "restarted"
            else:
                return Outcome("kept", self.view_of(existing)), effects
        version = tenant.funnel_version(funnel, now)
        engine = self._engine(version.id)
        # The row first (the unique index settles concurrent joins here), so plugins'
        # template variables can see the conversation the welcome is rendered for.
        row = s.ConversationRow.create(
            experience_id=event.experience_id, user_id=event.user_id,
            active_user=event.user_id, funnel_version=version, funnel_id=funnel.id,
            block=funnel.start, status="active", started_at=now, last_activity=now,
            expires_at=now + engine.timeout, user_name=event.user_name,
            company_id=event.company_id, product_id=event.product_id,
        )
        ctx = Context(event.user_id, event.experience_id, event.user_name,
                      self._vars(self.view_of(row)))
        decision = engine.start(ctx, now)
        effects += self._apply(row, decision, now)
        return Outcome(status, self.view_of(row), decision.messages, decision), effects

    def _message(self, event: MessageReceived, extra: Mapping[str, object]):
        now = self.clock.now()
        sql = self.store.statements
        conv = self.store.tenant(event.experience_id).active(event.user_id, lock=True)
        if conv is not None and event.channel_id and conv.channel_id not in (None, event.channel_id):
            conv = None  # a DM from another channel never lands in this conversation
        # Inserting the inbound row is the dedupe: its Whop message id is unique in every
        # tenant (a DM is processed once, once only); a duplicate writes nothing.
        inbound = sql.insert_inbound((
            event.experience_id, conv.id if conv else None, "in", event.user_id,
            event.message_id, event.text, "received" if conv else "unrouted", now))
        if inbound is None:
            return Outcome("duplicate"), []
        if conv is None:
            log.info("message %s from %s in %s has no active conversation; stored, not routed",
                     event.message_id, event.user_id, event.experience_id)
            return Outcome("unrouted"), []
        if event.channel_id and conv.channel_id is None:
            conv.channel_id = event.channel_id
        engine = self._engine(conv.funnel_version_id)
        ctx = Context(conv.user_id, conv.experience_id, conv.user_name, extra)
        snapshot: list[Conversation] = []  # built only if a callback needs it

        def on_invalid(state, reply, attempt, step):
            if not snapshot:
                snapshot.append(self.view_of(conv))
            return self.callbacks.on_invalid_response(
                conversation=snapshot[0], reply=reply, attempt=attempt, step=step)

        decision = engine.reply(to_state(conv), ctx, event.text, now, on_invalid)
        seen = decision.interaction
        sql.interaction.execute((
            conv.experience_id, conv.id, inbound, conv.funnel_id, seen.block, event.text,
            seen.classification, seen.option, seen.attempt, seen.action, seen.how, now))
        effects = self._apply(conv, decision, now)
        status = "ended" if decision.ended else "advanced"
        return Outcome(status, self.view_of(conv), decision.messages, decision), effects

    def _end(self, experience_id: str, user_id: str, reason: str, delivery_id=None):
        now = self.clock.now()
        if self._seen(delivery_id, now):
            return Outcome("duplicate"), []
        conv = self.store.tenant(experience_id).active(user_id, lock=True)
        if conv is None:
            return Outcome("inactive"), []
        decision = self._engine(conv.funnel_version_id).end(to_state(conv), "abandoned", reason)
        effects = self._apply(conv, decision, now)
        return Outcome("ended", self.view_of(conv), (), decision), effects

    def _seen(self, delivery_id: str | None, now: datetime) -> bool:
        """Record a webhook delivery in this transaction; True if it was processed before.
        (A concurrent twin fails the insert; the retry then sees it.)"""
        if not delivery_id:
            return False
        p = s.ProcessedEvent
        if p.select(p.webhook_id).where(p.webhook_id == delivery_id).exists():
            return True
        p.insert(webhook_id=delivery_id, received_at=now).execute()
        return False

    def _expire_batch(self, now: datetime):
        c = s.ConversationRow
        query = (c.select().where((c.status == "active") & (c.expires_at <= now))
                 .order_by(c.expires_at).limit(self.batch_size))
        ended, effects = [], []
        for row in self.store.claim(query):
            decision = self._engine(row.funnel_version_id).timeout_decision(to_state(row))
            effects += self._apply(row, decision, now)
            ended.append(row)
        return ended, effects

    def _remind_batch(self, now: datetime) -> int:
        cutoff = now - timedelta(seconds=self.reminder)
        c = s.ConversationRow
        query = (c.select().where((c.status == "active") & (c.reminder_sent == False)  # noqa: E712
                                  & (c.last_activity <= cutoff) & (c.expires_at > now))
                 .order_by(c.last_activity).limit(self.batch_size))
        count = 0
        for row in self.store.claim(query):
            ctx = Context(row.user_id, row.experience_id, row.user_name, self._vars(self.view_of(row)))
            self._apply(row, self._engine(row.funnel_version_id).tick(to_state(row), ctx, now), now)
            count += 1
        return count

    def _apply(self, row: s.ConversationRow, decision: Decision, now: datetime) -> list[int]:
        """Write the decision's state, outbox rows and owed hook calls; return effect ids."""
        st = decision.state
        values = dict(
            block=st.block, status=st.status, end_reason=st.end_reason,
            invalid_count=st.invalid_count, variables=json.dumps(dict(st.variables)),
            owner_notified=st.owner_notified, reminder_sent=st.reminder_sent,
            last_activity=st.last_activity, expires_at=st.expires_at,
            active_user=row.user_id if st.active else None,
            ended_at=now if not st.active and row.ended_at is None else row.ended_at,
            channel_id=row.channel_id, revision=row.revision + 1,
        )
        sql = self.store.statements
        if sql.update(row.id, row.revision, values) != 1:
            raise _Conflict()
        for key, value in values.items():
            setattr(row, key, value)
        if decision.entered:
            sql.visit.execute(*[(row.experience_id, row.id, row.funnel_id, block, now)
                                for block in decision.entered])
        if decision.messages:
            sql.outbound.execute(*[(row.experience_id, row.id, "out", row.user_id, text,
                                    "pending", now, idempotency_key(), now)
                                   for text in decision.messages])
        return self._owe(row, decision, now)

    def _owe(self, row, decision: Decision, now: datetime) -> list[int]:
        return self.effects.owe(row, decision, now, due_now=not self.inline_effects)

    def _fire(self, effect_ids, now: datetime) -> int:
        return self.effects.fire(effect_ids, now)

    # -- helpers ----------------------------------------------------------------------------

    def _engine(self, version_id: int) -> Engine:
        """The engine for a stored funnel version (conversations keep the one they began on)."""
        engine = self._engines.get(version_id)
        if engine is None:
            version = s.FunnelVersion.get_by_id(version_id)
            funnel = Funnel.from_dict(json.loads(version.definition))
            engine = Engine(funnel, timeout=self.timeout, reminder=self.reminder,
                            validators=self.validators)
            if len(self._engines) > 1024:
                self._engines.clear()
            self._engines[version_id] = engine
        return engine

    def view_of(self, row: s.ConversationRow) -> Conversation:
        """The read-only snapshot hooks see."""
        return view(row, self._engine(row.funnel_version_id).funnel.version)

    def _vars(self, conversation: Conversation | None) -> Mapping[str, object]:
        try:
            return dict(self.callbacks.template_vars(conversation=conversation) or {})
        except Exception:
            log.exception("template_vars failed; rendering without plugin variables")
            return {}


def idempotency_key() -> str:
    """32 hex digits, like `uuid4().hex`, but time-ordered (UUIDv7-style: the milliseconds
    first, then 80 random bits), so new outbox rows land at the end of the unique index
    instead of on random pages: fewer pages written per commit."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(k in text for k in ("deadlock", "lock wait", "database is locked", "could not serialize"))


