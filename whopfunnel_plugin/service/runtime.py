"""The running plugin: config, store, host, Whop client and dispatcher, wired to hooks."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from ..clock import SystemClock
from ..config import Config, check_routes
from ..conversation import inputs
from ..errors import ConfigError
from ..funnel.catalog import load_all
from ..storage.store import Store
from .delivery import Dispatcher
from .host import Callbacks, Host, Outcome

log = logging.getLogger("whopfunnel")
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


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
    def __init__(self, pm, config: Config, store: Store, host: Host, environ, clock,
                 transport=None, client=None):
        self.pm = pm
        self.config = config
        self.store = store
        self.host = host
        self.environ = environ
        self.clock = clock
        self.transport = transport
        self._client = client
        self._dispatcher: Dispatcher | None = None
        # Embedded hosts get their replies delivered before a hook call returns; the
        # server turns this off and lets the dispatcher job send right after the commit.
        self.inline_delivery = True

    @classmethod
    def build(cls, pm, config: Config, *, environ, clock=None, transport=None, client=None,
              check_schema: bool = True) -> Runtime:
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

        host = Host(store, funnels, clock=clock, timeout=config.timeout, reminder=config.reminder,
                    validators=validators, route=route, callbacks=HookCallbacks(pm))
        return cls(pm, config, store, host, environ, clock, transport, client)

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
                                          on_failed=self._delivery_failed)
        return self._dispatcher

    def deliver(self, outcome: Outcome) -> None:
        """Send what an event produced before returning; failures wait in the outbox."""
        if outcome.conversation is None or not self.inline_delivery:
            return
        try:
            self.dispatcher.deliver(outcome.conversation.id)
        except ConfigError:
            raise
        except Exception:
            log.exception("delivery for conversation %s failed; the outbox keeps the messages",
                          outcome.conversation.id)

    def _delivery_failed(self, conversation, text, error, attempts):
        self.pm.hook.on_delivery_failed(conversation=self.host.view_of(conversation), text=text,
                                        error=error, attempts=attempts)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self.store.close()
