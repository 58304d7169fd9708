"""The one place that wires storage, the engine and the callbacks together.

Every event is read, decided, written:
1. read the conversation (no lock held; one round trip, which also says whether the
   message or webhook delivery was processed before);
2. let the pure engine decide, calling out to plugins where it must (template
   variables, validators, `on_invalid_response`) while nothing is locked;
3. write the decision in one transaction, checked against the revision read in 1.
A conflict (the conversation moved meanwhile: a concurrent reply, the sweep) means
reading and deciding again, so a hook runs more than once for one event only when the
conversation really changed in between. Hook calls the change owes fire after the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from types import MappingProxyType

from ..clock import SystemClock
from ..conversation.engine import DEFAULT_TIMEOUT, Context, Engine
from ..errors import StorageError
from ..events import (
    MAX_ID,
    MAX_NAME,
    Conversation,
    MemberJoined,
    MembershipEnded,
    MessageReceived,
    Outcome,
    overlong_id,
    storable_text,
)
from ..funnel.model import Funnel
from ..storage import Change, Inbound, NewConversation, Store
from ..storage.records import to_state
from .effects import HookCalls
from .leases import LeaseKeeper
from .sweep import SweepResult, sweep

log = logging.getLogger("whopfunnel")
RETRIES = 8  # reads and decisions per event before giving up on a conversation that keeps moving
_EMPTY: Mapping[str, object] = MappingProxyType({})


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


class Host:
    """Runs funnels on a store. `route(event)` picks the funnel id a join starts.

    `hooks="inline"`: hook calls a change owes fire in the caller's thread right after
    the commit (embedding); `"deferred"`: they are left for `fire_due()`, which the
    server's job thread runs (webhooks answer without waiting for plugins).
    """

    def __init__(self, store: Store, funnels: Mapping[str, Funnel], *, clock=None,
                 timeout: int = DEFAULT_TIMEOUT, reminder: int | None = None,
                 validators: Mapping[str, Callable] | None = None,
                 route: Callable[[MemberJoined], str | None] | None = None,
                 callbacks: Callbacks | None = None, batch_size: int = 500,
                 hooks: str = "inline", keeper: LeaseKeeper | None = None):
        if hooks not in ("inline", "deferred"):
            raise ValueError("hooks must be 'inline' or 'deferred'")
        self.store = store
        self.funnels = dict(funnels)
        self.clock = clock or SystemClock()
        self.timeout = timeout
        self.reminder = reminder
        self.validators = dict(validators or {})
        self.route = route or self._only_funnel
        self.callbacks = callbacks or Callbacks()
        self.batch_size = batch_size
        self.hooks = hooks
        self.keeper = keeper or LeaseKeeper(store, self.clock)
        self.calls = HookCalls(store, self.callbacks, self.clock, self.keeper, self.snapshot)
        self._engines: dict[int, Engine] = {}

    def _only_funnel(self, event: MemberJoined) -> str | None:
        return next(iter(self.funnels)) if len(self.funnels) == 1 else None

    # -- events ---------------------------------------------------------------------------

    def join(self, event: MemberJoined) -> Outcome:
        _check_ids(event)
        funnel_id = event.funnel_id or self.route(event)
        funnel = self.funnels.get(funnel_id) if funnel_id else None
        if funnel is None:
            log.warning("no funnel for member %s joining experience %s (product %s); add a route",
                        event.user_id, event.experience_id, event.product_id)
            return Outcome("no_funnel")
        for _ in range(RETRIES):
            now = self.clock.now()
            existing, _, seen = self.store.lookup(event.experience_id, event.user_id,
                                                  delivery_id=event.delivery_id)
            if seen:
                return Outcome("duplicate")
            changes, status = [], "started"
            if existing is not None:
                engine, state = self.engine_for(existing.funnel_version_id), to_state(existing)
                if existing.expires_at is not None and now >= existing.expires_at:
                    changes.append(self._change(engine.timeout_decision(state), record=existing))
                elif funnel.on_rejoin == "restart":
                    changes.append(self._change(engine.end(state, "abandoned", "manual"),
                                                record=existing))
                    status = "restarted"
                else:
                    return Outcome("kept", self.snapshot(existing))
            version_id = self.store.funnel_version_id(event.experience_id, funnel, now)
            name = storable_text(event.user_name, MAX_NAME) if event.user_name else None
            new = NewConversation(event.experience_id, event.user_id, funnel.id, version_id, now,
                                  name, event.company_id, event.product_id)
            decision = self._start(new, funnel, now)
            changes.append(self._change(decision, new=new))
            written = self._write(changes, now, delivery_id=event.delivery_id)
            if written.status == "conflict":
                continue  # a concurrent join (or reply) won: look again
            if written.status == "duplicate":
                return Outcome("duplicate")
            return Outcome(status, self.snapshot(written.records[-1]), decision.messages, decision)
        raise self._gave_up()

    def message(self, event: MessageReceived, *, delivery_id: str | None = None,
                routed: tuple | None = None) -> Outcome:
        """Advance the member's conversation by one reply. `routed`: (record, seen) as
        `Store.route_dm` gave them (the webhook router read them already)."""
        _check_ids(event)
        text = storable_text(event.text)
        for attempt in range(RETRIES):
            now = self.clock.now()
            if attempt == 0 and routed is not None:
                (record, seen), seen_delivery = routed, False
            else:
                record, seen, seen_delivery = self.store.lookup(
                    event.experience_id, event.user_id, message_id=event.message_id,
                    delivery_id=delivery_id)
            if seen == "ours":  # our own sent message, echoed back: never a member's reply
                return Outcome("own_message")
            if seen or seen_delivery:
                return Outcome("duplicate")
            if record is not None and event.channel_id and record.channel_id not in (
                    None, event.channel_id):
                record = None  # a DM from another channel never lands in this conversation
            if record is None:
                # Not stored: the Whop message id stays free for the conversation it is for.
                log.info("message %s from %s in %s has no active conversation; ignored",
                         event.message_id, event.user_id, event.experience_id)
                return Outcome("unrouted")
            if event.channel_id and record.channel_id is None:
                record = record.evolve(channel_id=event.channel_id)
            decision = self._reply(record, text, now)
            written = self._write([self._change(decision, record=record,
                                                inbound=Inbound(event.message_id, text))], now)
            if written.status == "conflict":
                continue
            if written.status == "duplicate":
                return Outcome("duplicate")
            status = "ended" if decision.ended else "advanced"
            return Outcome(status, self.snapshot(written.records[0]), decision.messages, decision)
        raise self._gave_up()

    def end(self, event: MembershipEnded | None = None, *, experience_id: str | None = None,
            user_id: str | None = None, conversation_id: int | None = None,
            reason: str = "membership_ended") -> Outcome:
        """End a member's active conversation (or one by id) from outside the funnel."""
        if event is not None:
            _check_ids(event)
        exp = event.experience_id if event else experience_id
        user = event.user_id if event else user_id
        delivery = event.delivery_id if event else None
        for _ in range(RETRIES):
            now = self.clock.now()
            if conversation_id is not None:
                record, seen = self.store.conversation(exp, conversation_id), False
                record = record if record.status == "active" else None
            else:
                record, _, seen = self.store.lookup(exp, user, delivery_id=delivery)
            if seen:
                return Outcome("duplicate")
            if record is None:
                return Outcome("inactive")
            engine = self.engine_for(record.funnel_version_id)
            decision = engine.end(to_state(record), "abandoned", reason)
            written = self._write([self._change(decision, record=record)], now,
                                  delivery_id=delivery)
            if written.status == "conflict":
                continue
            if written.status == "duplicate":
                return Outcome("duplicate")
            return Outcome("ended", self.snapshot(written.records[0]), (), decision)
        raise self._gave_up()

    def fire_due(self) -> int:
        """Fire every hook call that is due (deferred ones, and ones a crash left behind)."""
        return self.calls.fire()

    def prompt(self, experience_id: str, user_id: str) -> tuple[str, ...]:
        """What the member's active conversation is waiting for, to show it again."""
        record = self.store.active(experience_id, user_id)
        if record is None:
            return ()
        ctx = Context(record.user_id, record.experience_id, record.user_name,
                      self.plugin_vars(lambda: self.snapshot(record)))
        return self.engine_for(record.funnel_version_id).prompt(to_state(record), ctx)

    def sweep(self, now: datetime | None = None) -> SweepResult:
        """End expired conversations, send due reminders, fire hook calls left by a crash
        (see `sweep.py`). `now` only decides what is swept (`whopfunnel sweep --now`)."""
        return sweep(self, now)

    # -- deciding (plugin code runs here, with nothing locked) -----------------------------

    def _start(self, new: NewConversation, funnel: Funnel, now: datetime):
        engine = self.engine_for(new.funnel_version_id)
        extra = self.plugin_vars(lambda: self._unsaved(new, funnel, engine, now))
        return engine.start(Context(new.user_id, new.experience_id, new.user_name, extra), now)

    def _reply(self, record, text: str, now: datetime):
        snapshot: list[Conversation] = []  # made only if a plugin needs it

        def view() -> Conversation:
            if not snapshot:
                snapshot.append(self.snapshot(record))
            return snapshot[0]

        def on_invalid(state, reply, attempt, step):
            return self.callbacks.on_invalid_response(conversation=view(), reply=reply,
                                                      attempt=attempt, step=step)

        ctx = Context(record.user_id, record.experience_id, record.user_name, self.plugin_vars(view))
        return self.engine_for(record.funnel_version_id).reply(to_state(record), ctx, text, now,
                                                            on_invalid)

    # -- helpers --------------------------------------------------------------------------

    def _change(self, decision, **kwargs) -> Change:
        """A write of `decision`, with when its state owes the one reminder (if any)."""
        state = decision.state
        remind_at = None
        if self.reminder and state.active and not state.reminder_sent:
            remind_at = state.last_activity + timedelta(seconds=self.reminder)
        return Change(decision, remind_at=remind_at, **kwargs)

    def _write(self, changes, now: datetime, delivery_id: str | None = None):
        written = self.store.write(changes, now=now, queued_at=self.clock.now(),
                                   effects_due=self.clock.now(), delivery_id=delivery_id)
        if written.status == "ok" and written.effects and self.hooks == "inline":
            self.calls.fire(written.effects)
        return written

    @staticmethod
    def _gave_up() -> StorageError:
        return StorageError("a conversation kept changing under concurrent updates; "
                            f"gave up after {RETRIES} attempts")

    def engine_for(self, version_id: int) -> Engine:
        """The engine for a stored funnel version (conversations keep the one they began on)."""
        engine = self._engines.get(version_id)
        if engine is None:
            _, definition = self.store.stored_funnel(version_id)
            engine = Engine(Funnel.from_dict(definition), timeout=self.timeout,
                            reminder=self.reminder, validators=self.validators)
            if len(self._engines) > 1024:
                self._engines.clear()
            self._engines[version_id] = engine
        return engine

    def snapshot(self, record) -> Conversation:
        """The read-only view hooks see."""
        return self.store.snapshot(record, self.engine_for(record.funnel_version_id).funnel.version)

    def _unsaved(self, new: NewConversation, funnel: Funnel, engine: Engine,
                 now: datetime) -> Conversation:
        """A join's conversation before it is stored (its id is 0 until the welcome and
        the row commit together)."""
        return Conversation(
            id=0, experience_id=new.experience_id, user_id=new.user_id, funnel_id=funnel.id,
            funnel_version=funnel.version, block=funnel.start, status="active", end_reason=None,
            invalid_count=0, variables={}, started_at=now, last_activity=now,
            expires_at=now + engine.timeout, user_name=new.user_name, company_id=new.company_id,
            product_id=new.product_id)

    def plugin_vars(self, conversation: Callable[[], Conversation]) -> Mapping[str, object]:
        """Plugins' template variables for a conversation (made only if a plugin has some)."""
        if not self.callbacks.has_template_vars:
            return _EMPTY
        try:
            return dict(self.callbacks.template_vars(conversation=conversation()) or {})
        except Exception:
            log.exception("template_vars failed; rendering without plugin variables")
            return _EMPTY


def _check_ids(event) -> None:
    field_name = overlong_id(event)
    if field_name is not None:
        raise ValueError(f"{type(event).__name__}.{field_name} is longer than {MAX_ID} "
                         "characters; Whop ids never are")
