"""The soak's members: who joins which tenant, what each one says, and the webhooks
Whop would post for it (see soak.py). Not a benchmark of its own.

Scripts are made with the pure engine on the funnel copies the workers serve, so a member
mostly answers the question in front of them; what the system really did is checked
afterwards against the database, never assumed from the script.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

from whopfunnel_plugin.conversation.engine import Context, Engine
from whopfunnel_plugin.funnel.model import Funnel

CHANGED = frozenset({"started", "restarted", "advanced", "ended"})  # answers that wrote something


@dataclass(frozen=True)
class Tenant:
    product: str
    experience: str
    company: str
    owner: str
    funnel: str  # funnel id
    file: str  # the shipped funnel it is a copy of


TENANTS = (
    Tenant("prod_a", "exp_a", "biz_a", "user_owner_a", "onboarding", "onboarding.yaml"),
    Tenant("prod_b", "exp_b", "biz_b", "user_owner_b", "qualification", "qualification.yaml"),
    Tenant("prod_c", "exp_c", "biz_c", "user_owner_c", "two-stage", "two_stage.yaml"),
)

# persona -> weight. completer: valid answers in assorted forms; wobbly: invalid and
# ambiguous replies mixed in (escalations, owner notifications, some abandon); abandoner:
# nothing valid; ghost: stops answering (times out); leaver: leaves the product midway;
# fast: sends two replies at once somewhere (they race, in either order).
PERSONAS = {"completer": 30, "wobbly": 28, "abandoner": 8, "ghost": 16, "leaver": 8, "fast": 10}
INVALID = ("what?", "idk", "hmm", "42", "tell me more", "🙂", "no idea, sorry", "0", "??")
HOSTILE = ("\ud800 lone surrogate", "x" * 5000, "مرحبا", "<script>alert(1)</script>", "{user_id}")
BAD_EMAILS = ("not an email", "me@", "call me maybe", "@example.com")
AMBIGUOUS = ("1 or 2", "first or second", "1, 2", "one or two")
ORDINALS = ("first", "second", "third")


@dataclass
class Member:
    user_id: str
    tenant: Tenant
    persona: str
    script: list  # ("say", text) | ("pair", text, text) | ("leave",)
    arrive: float  # seconds after the start


@dataclass
class Delivery:
    """One webhook as posted (a first delivery or a copy of one), and what became of it."""

    envelope: dict
    kind: str  # join | reply | leave
    member: str
    text: str | None = None
    copy_of: Delivery | None = None  # a redelivered copy: the first delivery
    sent_at: float | None = None  # unix time of the first post
    acked_at: float | None = None  # unix time of the 2xx (or 4xx) answer
    status_code: int | None = None
    status: str | None = None
    tries: int = 0
    error: str | None = None

    @property
    def message_id(self) -> str | None:
        message = self.envelope.get("data", {}).get("message")
        return message["id"] if message else None

    @property
    def acked(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def load_funnels(folder) -> dict[str, Funnel]:
    from whopfunnel_plugin.funnel.model import load_funnel

    return {t.funnel: load_funnel(folder / t.file) for t in TENANTS}


def make_members(count: int, funnels: dict[str, Funnel], rng: random.Random,
                 arrive_over: float) -> list[Member]:
    names, weights = list(PERSONAS), list(PERSONAS.values())
    members = []
    for n in range(count):
        tenant = TENANTS[n % len(TENANTS)]
        persona = rng.choices(names, weights)[0]
        user = f"user_{n:04d}_{rng.getrandbits(24):06x}"
        script = make_script(rng, funnels[tenant.funnel], tenant, user, persona)
        members.append(Member(user, tenant, persona, script, rng.uniform(0, arrive_over)))
    members.sort(key=lambda m: m.arrive)
    return members


def make_script(rng: random.Random, funnel: Funnel, tenant: Tenant, user: str,
                persona: str) -> list:
    engine = Engine(funnel)
    ctx = Context(user, tenant.experience)
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    state = engine.start(ctx, now).state
    script: list = []
    stop_after = rng.randint(0, 2) if persona == "ghost" else None
    leave_after = rng.randint(0, 2) if persona == "leaver" else None
    pair_at = rng.randint(0, 2) if persona == "fast" else None
    while state.active and len(script) < 12:
        if stop_after is not None and len(script) >= stop_after:
            return script
        if leave_after is not None and len(script) >= leave_after:
            script.append(("leave",))
            return script
        block = funnel.blocks[state.block]
        text = _reply(rng, block, persona, user)
        if pair_at is not None and len(script) == pair_at:
            other = _reply(rng, block, "wobbly", user)
            script.append(("pair", text, other))
        else:
            script.append(("say", text))
        state = engine.reply(state, ctx, text, now).state
    return script


def _reply(rng: random.Random, block, persona: str, user: str) -> str:
    roll = rng.random()
    if persona == "abandoner" or (persona == "wobbly" and roll < 0.3):
        if rng.random() < 0.15:
            return rng.choice(HOSTILE)
        if block.type == "input" and block.input == "email":
            return rng.choice(BAD_EMAILS)
        return rng.choice(INVALID)
    if block.type == "question" and persona == "wobbly" and roll < 0.45:
        return rng.choice(AMBIGUOUS)
    if block.type == "input":
        if block.input == "email":
            return rng.choice((f"{user}@example.com", f"  {user.upper()}@Example.COM ",
                               f"{user}+soak@mail.example.org"))
        return f"answer from {user}"
    k = rng.randrange(len(block.options))
    option = block.options[k]
    forms = [str(k + 1), f"#{k + 1}", f"option {k + 1}", option.text, option.text.lower(),
             *option.synonyms]
    if k < len(ORDINALS):
        forms.append(ORDINALS[k])
    return rng.choice(forms)


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    run: object = field(compare=False)


class Traffic:
    """Plays every member's script against the workers, as Whop would deliver it:
    members interleaved, each reply sent when the previous one was taken plus a think
    time; some deliveries posted again later with the same webhook id (a redelivery) or
    twice at once."""

    def __init__(self, fake, members: list[Member], urls, deliver, *, rng: random.Random,
                 redeliver: float = 0.15, twins: float = 0.03, threads: int = 48,
                 think: tuple[float, float] = (0.3, 2.5), late: tuple[float, float] = (0.5, 20.0)):
        self.fake = fake
        self.members = members
        self.urls = urls  # () -> the workers' URLs
        self.deliver = deliver  # (urls, envelope) -> answer dict (raises when never taken)
        self.rng = rng
        self.redeliver, self.twins, self.think, self.late = redeliver, twins, think, late
        self.deliveries: list[Delivery] = []
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="soak-member")
        self._heap: list[_Due] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._open = 0  # scheduled or running actions
        self._started = 0.0
        self._lock = threading.Lock()

    # -- scheduling ---------------------------------------------------------------------------

    def start(self) -> None:
        self._started = time.monotonic()
        for member in self.members:
            self._at(self._started + member.arrive, lambda m=member: self._join(m))
        threading.Thread(target=self._loop, name="soak-traffic", daemon=True).start()

    def done(self) -> bool:
        with self._cond:
            return self._open == 0

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._open:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 1.0))
        return True

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _at(self, when: float, run) -> None:
        with self._cond:
            self._open += 1
            heapq.heappush(self._heap, _Due(when, next(self._seq), run))
            self._cond.notify_all()

    def _finished(self) -> None:
        with self._cond:
            self._open -= 1
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0].at > time.monotonic():
                    if not self._heap and self._open == 0:
                        return
                    wait = self._heap[0].at - time.monotonic() if self._heap else 1.0
                    self._cond.wait(max(0.0, min(wait, 1.0)))
                due = heapq.heappop(self._heap)
            self._pool.submit(self._run, due.run)

    def _run(self, run) -> None:
        try:
            run()
        finally:
            self._finished()

    # -- members ------------------------------------------------------------------------------

    def _join(self, member: Member) -> None:
        t = member.tenant
        first = self._post(self.fake.membership_activated(member.user_id, t.product, t.company),
                           "join", member)
        if first.acked and first.status in ("started", "duplicate", "kept"):
            self._next(member, 0)

    def _next(self, member: Member, step: int) -> None:
        if step < len(member.script):
            delay = self.rng.uniform(*self.think)
            self._at(time.monotonic() + delay, lambda: self._step(member, step))

    def _step(self, member: Member, step: int) -> None:
        action = member.script[step]
        t = member.tenant
        if action[0] == "leave":
            self._post(self.fake.membership_deactivated(member.user_id, t.product, t.company),
                       "leave", member)
            return
        if action[0] == "say":
            self._post(self.fake.member_says(member.user_id, action[1], company_id=t.company),
                       "reply", member, action[1])
        else:  # two replies typed quickly: posted together, taken in whatever order
            envelopes = [(self.fake.member_says(member.user_id, text, company_id=t.company), text)
                         for text in action[1:]]
            done = threading.Barrier(len(envelopes) + 1)

            def send(envelope, text):
                try:
                    self._post(envelope, "reply", member, text)
                finally:
                    done.wait()

            for envelope, text in envelopes:
                threading.Thread(target=send, args=(envelope, text), daemon=True).start()
            done.wait()
        self._next(member, step + 1)

    def _post(self, envelope: dict, kind: str, member: Member, text: str | None = None,
              copy_of: Delivery | None = None) -> Delivery:
        record = Delivery(envelope, kind, member.user_id, text, copy_of)
        with self._lock:
            self.deliveries.append(record)
            twin = copy_of is None and self.rng.random() < self.twins
            again = copy_of is None and self.rng.random() < self.redeliver
            late = self.rng.uniform(*self.late)
        if twin:  # Whop posting the same webhook twice at once
            self._at(time.monotonic(), lambda: self._post(envelope, kind, member, text, record))
        urls = list(self.urls())
        with self._lock:
            self.rng.shuffle(urls)
        record.sent_at = time.time()
        try:
            answer = self.deliver(urls, envelope)
        except AssertionError as exc:  # never taken
            record.error = str(exc)
            return record
        record.acked_at = time.time()
        record.status_code, record.status = answer["status_code"], answer.get("status")
        record.tries = answer.get("tries", 1)
        if again and record.acked:  # redelivered later, after whatever came next
            self._at(time.monotonic() + late, lambda: self._post(envelope, kind, member, text, record))
        return record
