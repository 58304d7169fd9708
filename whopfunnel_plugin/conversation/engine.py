"""The pure conversation state machine: (funnel, state, event, now) -> Decision.

No I/O, no clock, no database: the caller passes `now` and performs the effects.
A Decision says what to send, the new state, what happened to the reply (for the
interactions table and analytics) and the effects (notify the owner, the end).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType

from ..funnel.model import CHOICE_INVALID, Block, Funnel, Step
from ..funnel.templates import render
from . import inputs
from .matching import match_reply
from .split import draw
from .state import Context, Decision, Ended, Interaction, NotifyOwner, State

__all__ = ["Context", "Decision", "Ended", "Engine", "Interaction", "NotifyOwner", "State",
           "DEFAULT_TIMEOUT", "STATUSES", "END_REASONS"]

DEFAULT_TIMEOUT = 24 * 3600
STATUSES = ("active", "completed", "abandoned", "handed_off", "transitioned")
END_REASONS = ("completed", "max_invalid_responses", "timeout", "handoff", "transitioned",
               "membership_ended", "manual")
_MAX_HOPS = 1000  # message and split blocks chained in one go; validation forbids loops

# on_invalid(state, reply, attempt, step) -> a replacement Step, a replacement message, or None
InvalidHandler = Callable[["State", str, int, Step], "Step | str | None"]


@dataclass
class _Out:
    """Accumulates one decision's messages and effects."""

    messages: list[str] = field(default_factory=list)
    effects: list = field(default_factory=list)
    entered: list[str] = field(default_factory=list)
    draws: list[tuple[str, int]] = field(default_factory=list)

    def say(self, text: str) -> None:
        if text and text.strip():
            self.messages.append(text)


class Engine:
    """Runs one funnel. Settings come from plugin.yaml; state comes from the caller."""

    def __init__(
        self,
        funnel: Funnel,
        *,
        timeout: int = DEFAULT_TIMEOUT,
        reminder: int | None = None,
        validators: Mapping[str, inputs.Validator] | None = None,
    ):
        self.funnel = funnel
        self.timeout = timedelta(seconds=funnel.timeout or timeout)
        self.reminder = timedelta(seconds=reminder) if reminder else None
        self.validators = dict(validators or {})

    # -- events -------------------------------------------------------------------------

    def start(self, ctx: Context, now: datetime) -> Decision:
        state = State(block=self.funnel.start, last_activity=now, expires_at=now + self.timeout)
        out = _Out()
        state = self._enter(self.funnel.start, state, ctx, out)
        return self._decide(state, out)

    def reply(
        self, state: State, ctx: Context, text: str, now: datetime,
        on_invalid: InvalidHandler | None = None,
    ) -> Decision:
        if not state.active:
            return Decision(state, interaction=Interaction(state.block, text, "ignored"))
        if state.expires_at is not None and now >= state.expires_at:
            timed_out = self.timeout_decision(state)
            return replace(timed_out, interaction=Interaction(state.block, text, "late"))
        block = self.funnel.blocks[state.block]
        state = state.evolve(last_activity=now, expires_at=now + self.timeout,
                        reminder_sent=False)
        out = _Out()
        if block.type == "question":
            match = match_reply(text, block.options)
            if match.kind == "valid":
                state = self._enter(block.options[match.index].next, state, ctx, out)
                seen = Interaction(block.id, text, "valid", match.index, how=match.how)
                return self._decide(state, out, seen)
            if match.kind == "ambiguous":
                out.say(self._render(self.funnel.ambiguous_message, state, ctx, block,
                                     candidates=self._candidates(block, match.candidates)))
                seen = Interaction(block.id, text, "ambiguous", candidates=match.candidates,
                                   attempt=state.invalid_count, how=match.how)
                return self._decide(state, out, seen)
        else:  # input: validation failures escalate like invalid choices
            try:
                validator = inputs.resolve(block.input, self.validators)
            except KeyError:  # its plugin is gone: take the reply as text, don't strand anyone
                validator = inputs.text
            value, why = inputs.validate(validator, text)
            if value is not None:
                variables = dict(state.variables)
                if block.save_as:
                    variables[block.save_as] = value
                state = state.evolve(invalid_count=0, variables=MappingProxyType(variables))
                state = self._enter(block.next, state, ctx, out)
                return self._decide(state, out, Interaction(block.id, text, "valid", how="input"))
            return self._escalate(block, state, ctx, text, out, on_invalid, why)
        return self._escalate(block, state, ctx, text, out, on_invalid)

    def tick(self, state: State, ctx: Context, now: datetime) -> Decision:
        """Periodic check: the timeout, or the one reminder before it."""
        if not state.active:
            return Decision(state)
        if state.expires_at is not None and now >= state.expires_at:
            return self.timeout_decision(state)
        if self.reminder and not state.reminder_sent and now >= state.last_activity + self.reminder:
            out = _Out()
            out.say(self._render(self.funnel.reminder, state, ctx))
            self._ask(self.funnel.blocks[state.block], state, ctx, out)
            return self._decide(state.evolve(reminder_sent=True), out)
        return Decision(state)

    def prompt(self, state: State, ctx: Context) -> tuple[str, ...]:
        """What the current block asks, to show again when a conversation is resumed."""
        out = _Out()
        if state.active and self.funnel.blocks[state.block].waits:
            self._ask(self.funnel.blocks[state.block], state, ctx, out)
        return tuple(out.messages)

    def timeout_decision(self, state: State) -> Decision:
        return self.end(state, "abandoned", "timeout")

    def end(self, state: State, status: str, reason: str) -> Decision:
        """End from outside the funnel: timeout, membership ended, manual."""
        if not state.active:
            return Decision(state)
        return Decision(state.evolve(status=status, end_reason=reason),
                        effects=(Ended(status, reason),))

    # -- internals ------------------------------------------------------------------------

    def _escalate(self, block, state, ctx, text, out, on_invalid, why: str = "") -> Decision:
        attempt = state.invalid_count + 1
        ladder = self.funnel.ladder(block.id)
        step = ladder[min(attempt, len(ladder)) - 1]
        if on_invalid is not None:
            override = on_invalid(state, text, attempt, step)
            if isinstance(override, Step):
                step = override
            elif isinstance(override, str):
                step = replace(step, message=override)
        state = state.evolve(invalid_count=attempt)
        # {invalid_message}: the block's own words, else the validator's, else the default
        if block.invalid_message is not None:
            why = self._render(block.invalid_message, state, ctx, block)
        out.say(self._render(step.message, state, ctx, block,
                             invalid_message=why or CHOICE_INVALID))
        if step.action == "reprompt":
            self._ask(block, state, ctx, out)
        elif step.action == "notify_owner":
            state = self._notify(state, block.id, "notify_owner", out)
        elif step.action == "abandon":
            state = self._finish(state, "abandoned", "max_invalid_responses", out)
        elif step.action == "handoff":
            state = self._notify(state, block.id, "handoff", out)
            state = self._finish(state, "handed_off", "handoff", out)
        elif step.action == "goto" and step.goto in self.funnel.blocks:
            state = self._enter(step.goto, state.evolve(invalid_count=0), ctx, out)
        else:  # an override with an action we cannot take: keep the member moving
            self._ask(block, state, ctx, out)
        seen = Interaction(block.id, text, "invalid", attempt=attempt, action=step.action)
        return self._decide(state, out, seen, step)

    def _enter(self, block_id: str, state: State, ctx: Context, out: _Out) -> State:
        """Move to a block, auto-advancing through message and split blocks, and say what
        it says."""
        for _ in range(_MAX_HOPS):
            block = self.funnel.blocks[block_id]
            state = state.evolve(block=block_id, invalid_count=0)
            out.entered.append(block_id)
            if block.type == "message":
                out.say(self._render(block.message, state, ctx, block))
                block_id = block.next
                continue
            if block.type == "split":
                index = draw(ctx.split_seed, block_id, [b.weight for b in block.branches])
                out.draws.append((block_id, index))
                block_id = block.branches[index].next
                continue
            if block.waits:
                self._ask(block, state, ctx, out)
                return state
            if block.type == "link":
                text = self._render(block.message, state, ctx, block, url=block.url)
                if "{url}" not in block.message:
                    text = f"{text}\n{block.url}" if text.strip() else block.url
                out.say(text)
                return self._finish(state, "transitioned", "transitioned", out)
            out.say(self._render(block.message, state, ctx, block))
            if block.type == "handoff":
                state = self._notify(state, block.id, "handoff", out)
                return self._finish(state, "handed_off", "handoff", out)
            return self._finish(state, "completed", "completed", out)
        raise RuntimeError(f"funnel {self.funnel.id!r} loops through message blocks")

    def _ask(self, block: Block, state: State, ctx: Context, out: _Out) -> None:
        text = self._render(block.message, state, ctx, block)
        if block.type == "question" and "{options}" not in block.message:
            text = f"{text}\n\n{self._options(block)}" if text.strip() else self._options(block)
        out.say(text)

    def _notify(self, state: State, block_id: str, reason: str, out: _Out) -> State:
        # notify_owner steps tell the owner once per conversation; a handoff always does
        # (it ends the conversation, so it happens once too): the member was promised it.
        if reason == "notify_owner" and state.owner_notified:
            return state
        out.effects.append(NotifyOwner(reason, block_id))
        return state.evolve(owner_notified=True)

    def _finish(self, state: State, status: str, reason: str, out: _Out) -> State:
        out.effects.append(Ended(status, reason))
        return state.evolve(status=status, end_reason=reason)

    @staticmethod
    def _options(block: Block) -> str:
        return "\n".join(f"{i}. {o.text}" for i, o in enumerate(block.options, start=1))

    @staticmethod
    def _candidates(block: Block, indexes) -> str:
        names = [f"{i + 1}. {block.options[i].text}" for i in indexes]
        return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)

    def _render(self, template: str, state: State, ctx: Context, block: Block | None = None,
                **extra) -> str:
        values: dict[str, object] = dict(ctx.extra_vars)
        values.update(self.funnel.vars)
        values.update(state.variables)
        values.update(user_name=ctx.user_name or "friend", user_id=ctx.user_id,
                      experience_id=ctx.experience_id,
                      options=self._options(block) if block is not None else "")
        values.update(extra)
        return render(template, values)

    def _decide(self, state, out: _Out, interaction=None, step=None) -> Decision:
        return Decision(state, tuple(out.messages), tuple(out.effects), interaction, step,
                        tuple(out.entered), tuple(out.draws))
