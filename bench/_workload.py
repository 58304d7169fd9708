"""The workload every side runs: one funnel shape, members, and replies to random members.

The funnel: two questions with two options each (and a third, "I'm done", that is never
chosen), then a number input (a text-validated state), back to the first question. An
invalid reply re-prompts (message, then the question again); the fourth in a row says
"Let's start again" and goes back to the first question, so no conversation ever ends
and every reply does the full read-decide-write.

Replies: "1" or "2" are valid in every state (an option number, or a number), the rest
("hmm?", ...) are invalid in every state, so the mix is exactly what the stream says
(half valid) without tracking anyone's state.
"""

from __future__ import annotations

import random

FUNNEL_ID = "bench"
FUNNEL_YAML = """\
id: bench
name: Bench
start: q1
timeout: 24h
escalation:
  - message: "Please choose one of the options above."
  - message: "Please reply with the number of an option."
  - message: "Still not one of the options; try the number."
  - message: "Let's start again."
    goto: again
blocks:
  again:
    message: "From the top."
    next: q1
  q1:
    message: "Hi {user_name}! Which topic interests you?"
    options:
      - {text: Trading, next: q2}
      - {text: Crypto, next: q2}
      - {text: "I'm done", next: done}
  q2:
    message: "And how experienced are you?"
    options:
      - {text: Beginner, next: years}
      - {text: Advanced, next: years}
      - {text: "I'm done", next: done}
  years:
    message: "How many years have you been at it? (a number)"
    input: number
    save_as: years
    next: q1
  done:
    type: end
    message: "Bye!"
"""
VALID = ("1", "2")
INVALID = ("hmm?", "what do you mean", "lol", "???")
ANSWERS = VALID + INVALID
TENANTS = 10


def experience(user: int) -> str:
    return f"exp_{user % TENANTS}"


def user_id(user: int) -> str:
    return f"user_{user}"


def shard(members: range | list, k: int, n: int) -> list[int]:
    """Member k of every n: concurrent drivers never reply to the same member at once."""
    return [m for m in members if m % n == k]


class Driver:
    """Replies to random members of `members`, about half of them valid."""

    def __init__(self, members, seed: int, first_user: int = 0, valid_share: float = 0.5):
        self.members = list(members) if not isinstance(members, int) else list(
            range(first_user, first_user + members))
        self.rng = random.Random(seed)
        self.valid_share_wanted = valid_share
        self.valid = self.total = 0

    def next(self) -> tuple[int, str]:
        rng = self.rng
        user = self.members[int(rng.random() * len(self.members))]
        self.total += 1
        if rng.random() < self.valid_share_wanted:
            self.valid += 1
            return user, VALID[int(rng.random() * len(VALID))]
        return user, INVALID[int(rng.random() * len(INVALID))]

    def valid_share(self) -> float:
        return self.valid / self.total if self.total else 0.0
