"""The running plugin: config, store, host, Whop client and dispatcher, wired to hooks.

`delivery="inline"` (embedding): each hook call commits, then sends what it produced
and fires the hook calls it owes before returning. `delivery="dispatcher"` (serving):
it commits and returns; the service's job thread sends and fires right after.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable

from ..clock import SystemClock
from ..config import Config, check_routes
from ..conversation import inputs
from ..errors import ConfigError, WhopFunnelError
from ..events import MemberJoined, MembershipEnded, MessageReceived, Outcome
from ..funnel.catalog import load_all
from ..storage import Store
from .activity import Activity
from .delivery import Dispatcher
from .host import Callbacks, Host
from .leases import LeaseKeeper

log = logging.getLogger("whopfunnel")
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
DELIVERY_MODES = ("inline", "dispatcher")


class HookCallbacks(Callbacks):
    """The host's callbacks, answered by the plugin manager's hooks."""

    def __init__(self, pm):
        self.pm = pm

    def on_invalid_response(self, conversation, reply, attempt, step):
        return self.pm.hook.on_invalid_response(conversation=conversation, reply=reply,
                                                attempt=attempt, step=step)

    def on_timeout(self, conversation):
        self.pm.hook.on_timeout(conversation=conversation)

    def on_conversation_end(self, conversation):
        self.pm.hook.on_conversation_end(conversation=conversation)

    def on_owner_notify(self, conversation, reason, block, last_replies):
        self.pm.hook.on_owner_notify(conversation=conversation, reason=reason, block=block,
                                     last_replies=last_replies)

    @property
    def has_template_vars(self) -> bool:
        return bool(self.pm.hook.register_template_vars.get_hookimpls())

    def template_vars(self, conversation):
        merged: dict = {}
        for values in reversed(self.pm.hook.register_template_vars(conversation=conversation)):
            if isinstance(values, dict):
                merged.update(values)
        return merged


def plugin_context(pm) -> dict:
    """What plugins add to funnel validation: validators and template variable names."""
    return {"validators": collect_validators(pm),
            "template_vars": set(HookCallbacks(pm).template_vars(None))}


def collect_validators(pm) -> dict[str, inputs.Validator]:
    found: dict[str, inputs.Validator] = {}

    def register(name: str, function: Callable[[str], str]) -> None:
        if not isinstance(name, str) or not _NAME.match(name) or name in inputs.BUILTIN:
            raise ValueError(f"validator name {name!r} must be lowercase a-z0-9_ and not a "
                             "built-in (email, number, text)")
        if not callable(function):
            raise ValueError(f"validator {name!r} is not callable")
        found[name] = function

    pm.hook.register_validators(register=register)
    return found


class Runtime:
    def __init__(self, pm, config: Config, store: Store, host: Host, *, environ, clock,
                 keeper: LeaseKeeper, delivery: str = "inline", transport=None, client=None):
        if delivery not in DELIVERY_MODES:
            raise ValueError(f"delivery must be one of {', '.join(DELIVERY_MODES)}, not {delivery!r}")
        self.pm = pm
        self.config = config
        self.store = store
        self.host = host
        self.environ = environ
        self.clock = clock
        self.keeper = keeper
        self.delivery = delivery
        self.transport = transport
        self.worker_id = uuid.uuid4().hex[:12]
        self._client = client
        self._dispatcher: Dispatcher | None = None
        self.closed = False
        self.activity = Activity(self)  # log lines and metrics (service/activity.py)
        self.plugin_context: dict = {}  # validators and template variables, set by build()

    @classmethod
    def build(cls, pm, config: Config, *, environ, clock=None, transport=None, client=None,
              check_schema: bool = True, delivery: str = "inline") -> Runtime:
        clock = clock or SystemClock()
        extra = plugin_context(pm)
        validators, names = extra["validators"], extra["template_vars"]
        funnels = load_all(config.funnel_paths(), ladders=config.ladders, validators=validators,
                           template_vars=names)
        check_routes(config, funnels)
        store = Store(config.database_url(environ))
        if check_schema:
            try:
                store.check_schema()
            except BaseException:
                store.close()
                raise

        def route(event):
            chosen = config.route(event)
            return chosen.funnel if chosen else None

        keeper = LeaseKeeper(store, clock)
        host = Host(store, funnels, clock=clock, timeout=config.timeout, reminder=config.reminder,
                    validators=validators, route=route, callbacks=HookCallbacks(pm),
                    hooks="inline" if delivery == "inline" else "deferred", keeper=keeper)
        runtime = cls(pm, config, store, host, environ=environ, clock=clock, keeper=keeper,
                      delivery=delivery, transport=transport, client=client)
        runtime.plugin_context = extra  # what a funnel reload validates against (reload.py)
        return runtime

    @property
    def client(self):
        """The Whop client, made on first use (commands that never send need no API key)."""
        if self._client is None:
            from ..whop.client import WhopClient
            from ..whop.ratelimit import RateLimiter

            budget = self.config.rate_limit  # one budget for every caller: dispatcher and poller
            self._client = WhopClient(
                self.config.secret("api_key_env", self.environ), base_url=self.config.base_url,
                transport=self.transport, api_version_date=self.config.api_version_date,
                limiter=RateLimiter(budget.rate, burst=budget.burst) if budget else None)
        return self._client

    @property
    def dispatcher(self) -> Dispatcher:
        if self._dispatcher is None:
            self._dispatcher = Dispatcher(self.store, self.client, self.clock,
                                          on_failed=self._delivery_failed, keeper=self.keeper,
                                          on_send=self.activity.sent)
        return self._dispatcher

    # -- events, as the built-in funnel plugin and the server hand them over -------------

    def join(self, event: MemberJoined) -> Outcome:
        return self._delivered(self._seen("join", self.host.join(event)))

    def message(self, event: MessageReceived, *, delivery_id: str | None = None,
                routed: tuple | None = None) -> Outcome:
        return self._delivered(self._seen("message", self.host.message(
            event, delivery_id=delivery_id, routed=routed)))

    def end(self, event: MembershipEnded) -> Outcome:
        return self._delivered(self._seen("end", self.host.end(event)))

    def _seen(self, kind: str, outcome: Outcome) -> Outcome:
        self.activity.event(kind, outcome)  # metrics: joins, replies, escalation steps
        return outcome

    def _delivered(self, outcome: Outcome) -> Outcome:
        """Inline: send what the event produced before returning; failures wait in the outbox."""
        if self.delivery != "inline" or outcome.conversation is None:
            return outcome
        decision = outcome.decision
        if not outcome.messages and not getattr(decision, "effects", ()):
            return outcome  # nothing new to send (an owner notification queues to the outbox)
        try:
            self.dispatcher.deliver(outcome.conversation.id)
        except ConfigError:
            raise
        except WhopFunnelError as exc:
            log.warning("delivery for conversation %s failed; the outbox keeps the messages: %s",
                        outcome.conversation.id, str(exc).splitlines()[0])
        except Exception:
            log.exception("delivery for conversation %s failed; the outbox keeps the messages",
                          outcome.conversation.id)
        return outcome

    def _delivery_failed(self, conversation, text, error, attempts):
        self.pm.hook.on_delivery_failed(conversation=self.host.snapshot(conversation), text=text,
                                        error=error, attempts=attempts)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.keeper.close()
        if self._client is not None:
            self._client.close()
        self.store.close()
