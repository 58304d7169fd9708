"""The soak's end-of-run checks (see soak.py): the database, the fake Whop API's log, the
webhook answers and the hook recorder, compared with each other. Pure functions of what
was collected; each problem found is one line of evidence under its check's name.

    lost        an outbox row not sent, or marked sent but never visible at Whop; a
                notification never posted; an acknowledged join with no conversation; an
                acknowledged reply with no interaction row (or "unrouted" while its
                member's conversation was active); a webhook never accepted; a hook call
                owed (by the replayed decisions) that never fired; an owner DM owed that
                was never queued
    duplicated  an Idempotency-Key visible twice; a visible message with no outbox row;
                two interactions for one message id; two conversations for one member; a
                redelivered webhook that changed something again; a notification twice
    reordered   per conversation and lane, visible messages out of outbox id order;
                on_conversation_end before on_timeout for a timed-out conversation
    wrong state the stored conversation differs from its replay through the pure engine
                (start, then every interaction in id order at its own time, then the
                sweep's timeout or the membership's end), or its interactions, visits or
                outbound texts differ from what the replay decided
    hooks twice a hook call fired more than once, not explained by a SIGKILL of the
                worker that fired it first (SPEC §6: at least once across crashes; those
                are counted apart)
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

from soak_traffic import CHANGED, Delivery

from whopfunnel_plugin.conversation.engine import Engine, NotifyOwner
from whopfunnel_plugin.conversation.state import Context
from whopfunnel_plugin.events import storable_text
from whopfunnel_plugin.funnel.model import Funnel

CHECKS = ("lost", "duplicated", "reordered", "wrong state", "hooks fired twice")
STATE_COLUMNS = ("block", "status", "end_reason", "invalid_count", "variables", "owner_notified",
                 "reminder_sent", "last_activity", "expires_at")


@dataclass
class Findings:
    problems: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in CHECKS})
    info: Counter = field(default_factory=Counter)

    def add(self, check: str, evidence: str) -> None:
        self.problems[check].append(evidence)

    def count(self, check: str) -> int:
        return len(self.problems[check])

    @property
    def ok(self) -> bool:
        return not any(self.problems.values())


@dataclass
class Collected:
    """Everything the checks read, gathered once the workers are stopped."""

    conversations: list[dict]
    messages: list[dict]  # the outbox (member messages are stored as their interactions)
    interactions: list[dict]
    visits: list[dict]
    funnels: dict[int, dict]  # funnel version id -> definition
    pending_effects: int
    sent: list[dict]  # fake.sent_messages(), oldest first
    notifications: list[dict]
    requests: list  # fake.seen_requests()
    deliveries: list[Delivery]
    hook_calls: list[dict]  # tools.hook_calls()
    kills: list[tuple[int, float]]  # (pid, unix time of the SIGKILL)
    timeout: int  # plugin.yaml timeouts.conversation, seconds


def utc(value):
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def check(c: Collected) -> Findings:
    f = Findings()
    outbound = [m for m in c.messages if m["direction"] == "out"]
    _outbox(c, f, outbound)
    by_member = defaultdict(list)
    for conv in c.conversations:
        by_member[(conv["experience_id"], conv["user_id"])].append(conv)
    _webhooks(c, f, by_member)
    expected = _replay_all(c, f, outbound)
    _hooks(c, f, expected)
    if c.pending_effects:
        f.add("lost", f"{c.pending_effects} hook calls still owed in pending_effects")
    return f


# -- the outbox against Whop's log ------------------------------------------------------------

def _outbox(c: Collected, f: Findings, outbound: list[dict]) -> None:
    rows = {m["idempotency_key"]: m for m in outbound}
    visible = Counter(s["idempotency_key"] for s in c.sent)
    f.info["outbox rows"] = len(outbound)
    f.info["visible messages"] = len(c.sent)
    for m in outbound:
        where = f"outbox row {m['id']} (conversation {m['conversation_id']}, {m['recipient']})"
        if m["status"] != "sent":
            f.add("lost", f"{where} is {m['status']} after {m['attempts']} attempts: "
                          f"{(m['last_error'] or '')[:120]}")
        elif visible[m["idempotency_key"]] == 0:
            f.add("lost", f"{where} is marked sent but no message with its key reached Whop")
    for key, n in visible.items():
        if key is None or key not in rows:
            f.add("duplicated", f"{n} visible message(s) with key {key!r}: no outbox row has it")
        elif n > 1:
            f.add("duplicated", f"key {key} visible {n} times")
    posted = Counter(n["idempotency_key"] for n in c.notifications)
    for m in outbound:
        if m["recipient"] == "owner" and m["title"] and m["status"] == "sent":
            n = posted[f"{m['idempotency_key']}-notification"]
            if n == 0:
                f.add("lost", f"owner row {m['id']}: its notification was never posted")
            elif n > 1:
                f.add("duplicated", f"owner row {m['id']}: notification posted {n} times")
    keyless = [r for r in c.requests if r.method == "POST" and r.path.rstrip("/").endswith("/messages")
               and not r.idempotency_key]
    if keyless:
        f.add("duplicated", f"{len(keyless)} POST /messages without an Idempotency-Key")
    # Order: per conversation and lane, in the order Whop shows them, outbox ids ascend.
    seen: dict[tuple, int] = {}
    for s in c.sent:
        m = rows.get(s["idempotency_key"])
        if m is None:
            continue
        lane = (m["conversation_id"], m["recipient"])
        if lane in seen and seen[lane] > m["id"]:
            f.add("reordered", f"conversation {lane[0]} {lane[1]} lane: row {m['id']} visible "
                               f"after row {seen[lane]}")
        seen[lane] = max(seen.get(lane, 0), m["id"])
    resent = Counter(r.idempotency_key for r in c.requests if r.method == "POST"
                     and r.idempotency_key and r.path.rstrip("/").endswith("/messages"))
    f.info["sends repeated with the same key"] = sum(1 for n in resent.values() if n > 1)
    f.info.update({f"Whop answers: {k}": v for k, v in
                   Counter(r.outcome for r in c.requests).items()})


# -- webhook answers against the database -----------------------------------------------------

def _webhooks(c: Collected, f: Findings, by_member) -> None:
    # A member's DM is stored once, as the interaction that processed it (schema 2).
    stored = Counter(i["whop_message_id"] for i in c.interactions if i["whop_message_id"])
    processed = {i["whop_message_id"]: i for i in c.interactions if i["whop_message_id"]}
    for (exp, user), convs in by_member.items():
        if len(convs) > 1:
            f.add("duplicated", f"member {user} has {len(convs)} conversations in {exp}: "
                                f"{[cv['id'] for cv in convs]}")
    members = {user: convs for (_, user), convs in by_member.items()}
    posted: dict[str, list[Delivery]] = defaultdict(list)  # webhook id -> every delivery of it
    for d in c.deliveries:
        answer = d.status or ("never taken" if d.error else str(d.status_code))
        f.info[f"webhooks {d.kind}{' copy' if d.copy_of else ''} {answer}"] += 1
        posted[d.envelope["id"]].append(d)
        if d.error is not None:
            f.add("lost", f"{d.kind} webhook {d.envelope['id']} for {d.member} never accepted")
        elif not d.acked:
            f.add("lost", f"{d.kind} webhook {d.envelope['id']} for {d.member} refused "
                          f"{d.status_code} {d.status}")
    for webhook_id, group in posted.items():
        taken = [d for d in group if d.acked]
        if not taken:
            continue
        first = group[0]
        changed = [d.status for d in taken if d.status in CHANGED]
        if len(changed) > 1:
            f.add("duplicated", f"{first.kind} webhook {webhook_id} processed {len(changed)} times: "
                                f"{changed}")
        convs = members.get(first.member, [])
        if first.kind == "join" and not convs:
            f.add("lost", f"join of {first.member} answered {taken[0].status}, but no conversation "
                          "exists")
        elif first.kind == "reply":
            _reply_taken(f, taken, convs, processed)
        elif first.kind == "leave" and "ended" in changed and convs \
                and convs[-1]["end_reason"] != "membership_ended":
            f.add("wrong state", f"leave of {first.member} answered ended, conversation "
                                 f"{convs[-1]['id']} ended {convs[-1]['end_reason']}")
    for message_id, n in stored.items():
        if n > 1:
            f.add("duplicated", f"{n} interactions for member message {message_id}")


NOT_TAKEN = ("unrouted", "ignored")  # no active conversation for the DM (ignored: no route)


def _reply_taken(f: Findings, taken: list[Delivery], convs, processed) -> None:
    """Every delivery of one reply that was answered 2xx: it was processed once, or every
    answer says it had no conversation to go to, and indeed its conversation had ended."""
    d = taken[0]
    row = processed.get(d.message_id)
    statuses = sorted({t.status for t in taken})
    if set(statuses) - {"advanced", "ended", "duplicate", *NOT_TAKEN}:
        f.add("lost", f"reply {d.message_id} of {d.member} answered {statuses}")
        return
    if row is not None:
        if row["text"] != storable_text(d.text):
            f.add("wrong state", f"reply {d.message_id} stored as {row['text'][:40]!r}, "
                                 f"sent as {d.text[:40]!r}")
        return
    refused = sorted((t for t in taken if t.status in NOT_TAKEN), key=lambda t: t.acked_at)
    if not refused or set(statuses) & {"advanced", "ended"}:
        f.add("lost", f"reply {d.message_id} of {d.member} answered {statuses}, but no interaction "
                      "has its message id")
        return
    ended = [utc(cv["ended_at"]) for cv in convs if cv["ended_at"] is not None]
    if len(ended) < len(convs) or not ended or ended[-1].timestamp() > refused[0].acked_at + 0.001:
        f.add("lost", f"reply {d.message_id} of {d.member} answered {refused[0].status} at "
                      f"{refused[0].acked_at:.3f}, before its conversation ended "
                      f"({ended[-1] if ended else 'never'})")


# -- replaying each conversation through the pure engine --------------------------------------

@dataclass
class Replayed:
    state: object
    messages: list
    entered: list
    notify: list  # NotifyOwner reasons, in order
    ends: int
    timeouts: int


def _replay_all(c: Collected, f: Findings, outbound) -> dict[int, Replayed]:
    """Replay every conversation; what each one owes (by conversation id)."""
    engines: dict[int, Engine] = {}
    interactions, visits, member_out, owner_out = (defaultdict(list) for _ in range(4))
    for i in sorted(c.interactions, key=lambda r: r["id"]):
        interactions[i["conversation_id"]].append(i)
    for v in sorted(c.visits, key=lambda r: r["id"]):
        visits[v["conversation_id"]].append(v["block"])
    for m in sorted(outbound, key=lambda r: r["id"]):
        (owner_out if m["recipient"] == "owner" else member_out)[m["conversation_id"]].append(m)
    expected: dict[int, Replayed] = {}
    for conv in c.conversations:
        version = conv["funnel_version_id"]
        if version not in engines:
            engines[version] = Engine(Funnel.from_dict(c.funnels[version]), timeout=c.timeout)
        where = f"conversation {conv['id']} ({conv['user_id']})"
        try:
            r = _replay(engines[version], conv, interactions[conv["id"]], f, where)
        except Exception as exc:  # noqa: BLE001 - a replay that cannot run is itself a finding
            f.add("wrong state", f"{where}: replay failed: {type(exc).__name__}: {exc}")
            continue
        expected[conv["id"]] = r
        f.info[f"ended {conv['status']}/{conv['end_reason'] or '-'}"] += 1
        _compare(f, where, conv, r)
        texts = [m["text"] for m in member_out[conv["id"]]]
        if texts != r.messages:
            f.add("wrong state", f"{where}: sent {len(texts)} messages, the replay says "
                                 f"{len(r.messages)}; first difference at "
                                 f"{_first_difference(texts, r.messages)}")
        if visits[conv["id"]] != r.entered:
            f.add("wrong state", f"{where}: visits {visits[conv['id']]} != replay {r.entered}")
        owner = [m["idempotency_key"].rsplit("-", 1)[-1] for m in owner_out[conv["id"]]]
        if owner != r.notify:
            check_name = "lost" if len(owner) < len(r.notify) else "duplicated"
            f.add(check_name, f"{where}: owner DMs {owner}, the replay owes {r.notify}")
    return expected


def _replay(engine: Engine, conv: dict, rows: list[dict], f: Findings, where: str) -> Replayed:
    ctx = Context(conv["user_id"], conv["experience_id"], conv["user_name"])
    d = engine.start(ctx, utc(conv["started_at"]))
    state, messages, entered, effects = d.state, list(d.messages), list(d.entered), list(d.effects)
    last = None
    for row in rows:
        if row["classification"] == "split":
            continue
        at = utc(row["created_at"])
        if last is not None and at < last:
            f.add("wrong state", f"{where}: interaction {row['id']} is older than the one before")
        last = at
        if not state.active:
            f.add("wrong state", f"{where}: interaction {row['id']} after the conversation ended")
            break
        d = engine.reply(state, ctx, row["text"], at)
        seen = d.interaction
        got = (row["block"], row["classification"], row["option_index"], row["attempt"], row["action"])
        want = (seen.block, seen.classification, seen.option, seen.attempt, seen.action)
        if got != want:
            f.add("wrong state", f"{where}: interaction {row['id']} stored {got}, replay {want}")
        f.info[f"replies {seen.classification}"] += 1
        if seen.action:
            f.info[f"escalation step {seen.action}"] += 1
        state = d.state
        messages += d.messages
        entered += d.entered
        effects += d.effects
    if state.active and conv["status"] != "active":
        ended_at = utc(conv["ended_at"])
        if conv["end_reason"] == "timeout":
            if state.expires_at is None or ended_at is None or ended_at < state.expires_at:
                f.add("wrong state", f"{where}: timed out at {ended_at}, expiring at {state.expires_at}")
            d = engine.timeout_decision(state)
        elif conv["end_reason"] == "membership_ended":
            d = engine.end(state, "abandoned", "membership_ended")
        else:
            f.add("wrong state", f"{where}: ended {conv['end_reason']} though the replay is active")
            d = engine.end(state, conv["status"], conv["end_reason"])
        state = d.state
        messages += d.messages
        effects += d.effects
    notify = [e.reason for e in effects if isinstance(e, NotifyOwner)]
    ends = int(not state.active)
    timeouts = int(state.end_reason == "timeout")
    return Replayed(state, messages, entered, notify, ends, timeouts)


def _compare(f: Findings, where: str, conv: dict, r: Replayed) -> None:
    stored = dict(conv)
    stored["variables"] = json.loads(conv["variables"]) if isinstance(conv["variables"], str) \
        else conv["variables"]
    for name in ("last_activity", "expires_at"):
        stored[name] = utc(stored[name])
    for name in ("owner_notified", "reminder_sent"):
        stored[name] = bool(stored[name])
    for name in STATE_COLUMNS:
        want = getattr(r.state, name)
        want = dict(want) if name == "variables" else want
        if stored[name] != want:
            f.add("wrong state", f"{where}: {name} stored {stored[name]!r}, replay {want!r}")


def _first_difference(a: list, b: list) -> str:
    for n, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"#{n}: {x[:50]!r} != {y[:50]!r}"
    return f"#{min(len(a), len(b))} (one is longer)"


# -- hook calls against what the replay owes --------------------------------------------------

def _hooks(c: Collected, f: Findings, expected: dict[int, Replayed]) -> None:
    fired = defaultdict(list)
    for call in c.hook_calls:
        if call["hook"] == "begin":
            continue
        detail = call["detail"] if call["hook"] == "on_owner_notify" else ""
        fired[(call["hook"], call["conversation"], detail)].append(call)
    killed = dict(c.kills)
    owed: Counter = Counter()
    for conv_id, r in expected.items():
        if r.ends:
            owed[("on_conversation_end", conv_id, "")] += 1
        if r.timeouts:
            owed[("on_timeout", conv_id, "")] += 1
        for reason in r.notify:
            owed[("on_owner_notify", conv_id, reason)] += 1
    refired = 0
    for key, calls in fired.items():
        f.info[f"hook {key[0]}"] += 1
        if key[0] == "on_delivery_failed":
            if len(calls) > 1:
                f.add("hooks fired twice", f"on_delivery_failed for conversation {key[1]} "
                                           f"fired {len(calls)} times")
            continue
        if key not in owed:
            f.add("hooks fired twice", f"{key[0]} for conversation {key[1]} {key[2]} fired, "
                                       "but the replay owes no such call")
            continue
        extra = calls[1:]
        for earlier, later in zip(calls, extra):
            # At least once across crashes: the worker that fired it first died before it
            # could mark it done, and another one fired it again after the kill.
            if earlier["pid"] in killed and later["at"] >= killed[earlier["pid"]]:
                refired += 1
            else:
                f.add("hooks fired twice", f"{key[0]} for conversation {key[1]} {key[2]} fired "
                                           f"by pid {earlier['pid']} and again by pid {later['pid']}")
    f.info["hook calls fired again after a SIGKILL (allowed)"] = refired
    for key in owed:
        if key not in fired:
            f.add("lost", f"{key[0]} for conversation {key[1]} {key[2]} owed, never fired")
    for conv_id, r in expected.items():
        if r.timeouts:
            order = [x["hook"] for x in c.hook_calls if x["conversation"] == conv_id
                     and x["hook"] in ("on_timeout", "on_conversation_end")]
            if order and order[0] != "on_timeout":
                f.add("reordered", f"conversation {conv_id}: {order} (on_timeout comes first)")
