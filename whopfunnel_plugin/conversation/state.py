"""The engine's values: who a conversation is with, its state, and what a decision says.

Frozen dataclasses; the host (and the lead's storage) read and write them. New fields
are only ever added with defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from ..funnel.model import Step

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Context:
    """Who the conversation is with; `extra_vars` are template values from plugins.

    `seed` makes split draws sticky and reproducible: the host passes one per
    conversation (e.g. "experience:user:started_at"); empty means "experience:user".
    """

    user_id: str
    experience_id: str
    user_name: str | None = None
    extra_vars: Mapping[str, object] = field(default_factory=lambda: _EMPTY)
    seed: str = ""

    @property
    def split_seed(self) -> str:
        return self.seed or f"{self.experience_id}:{self.user_id}"


@dataclass(frozen=True)
class State:
    block: str
    last_activity: datetime
    expires_at: datetime | None
    status: str = "active"
    end_reason: str | None = None
    invalid_count: int = 0
    variables: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    owner_notified: bool = False
    reminder_sent: bool = False

    @property
    def active(self) -> bool:
        return self.status == "active"

    def evolve(self, **changes) -> State:
        """A copy with `changes`: dataclasses.replace, minus its per-call introspection
        (the engine makes a few per reply, and they were a fifth of its CPU)."""
        return State(**{**self.__dict__, **changes})


@dataclass(frozen=True)
class NotifyOwner:
    """Tell the experience's owner: `reason` is "notify_owner" or "handoff"."""

    reason: str
    block: str


@dataclass(frozen=True)
class Ended:
    status: str
    reason: str


@dataclass(frozen=True)
class Interaction:
    """What a reply was taken as: one row of the interactions table."""

    block: str
    text: str
    classification: str  # valid | invalid | ambiguous | late | ignored
    option: int | None = None  # 0-based index of the option chosen
    candidates: tuple[int, ...] = ()
    attempt: int = 0  # consecutive invalid replies on this block, this one included
    action: str | None = None  # the escalation step taken, for invalid replies
    how: str = ""


@dataclass(frozen=True)
class Decision:
    state: State
    messages: tuple[str, ...] = ()
    effects: tuple[NotifyOwner | Ended, ...] = ()
    interaction: Interaction | None = None
    step: Step | None = None  # the escalation step taken (after any override)
    entered: tuple[str, ...] = ()  # blocks entered, in order (funnel analytics)
    draws: tuple[tuple[str, int], ...] = ()  # (split block id, 0-based branch index) drawn

    @property
    def ended(self) -> Ended | None:
        return next((e for e in self.effects if isinstance(e, Ended)), None)


