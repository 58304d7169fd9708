"""Funnel analytics from the stored interactions: reach, drop-off and end reasons.

Everything is computed with grouped queries per tenant, never by loading conversations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peewee import fn


@dataclass
class BlockStats:
    block: str
    reached: int = 0        # conversations that entered the block (message blocks too)
    here_now: int = 0       # active conversations waiting on it
    dropped: int = 0        # conversations that were abandoned on it
    invalid: int = 0        # invalid replies on it
    ambiguous: int = 0


@dataclass
class FunnelStats:
    experience_id: str
    funnel_id: str
    started: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    end_reasons: dict[str, int] = field(default_factory=dict)
    blocks: dict[str, BlockStats] = field(default_factory=dict)

    def block(self, name: str) -> BlockStats:
        return self.blocks.setdefault(name, BlockStats(name))


def funnel_stats(store, experience_id: str | None = None) -> list[FunnelStats]:
    c, i = store.models.conversation, store.models.interaction
    found: dict[tuple[str, str], FunnelStats] = {}

    def get(exp, funnel) -> FunnelStats:
        return found.setdefault((exp, funnel), FunnelStats(exp, funnel))

    scope_c = (c.experience_id == experience_id) if experience_id else True
    scope_i = (i.experience_id == experience_id) if experience_id else True
    rows = (c.select(c.experience_id, c.funnel_id, c.status, c.end_reason, c.block,
                     fn.COUNT(c.id).alias("n"))
            .where(scope_c).group_by(c.experience_id, c.funnel_id, c.status, c.end_reason, c.block))
    for r in rows.namedtuples():
        f = get(r.experience_id, r.funnel_id)
        f.started += r.n
        f.statuses[r.status] = f.statuses.get(r.status, 0) + r.n
        if r.end_reason:
            f.end_reasons[r.end_reason] = f.end_reasons.get(r.end_reason, 0) + r.n
        b = f.block(r.block)
        if r.status == "active":
            b.here_now += r.n
        elif r.status == "abandoned":
            b.dropped += r.n
    replies = (i.select(i.experience_id, i.funnel_id, i.block, i.classification,
                        fn.COUNT(i.id).alias("n"))
               .where(scope_i).group_by(i.experience_id, i.funnel_id, i.block, i.classification))
    for r in replies.namedtuples():
        b = get(r.experience_id, r.funnel_id).block(r.block)
        if r.classification == "invalid":
            b.invalid += r.n
        elif r.classification == "ambiguous":
            b.ambiguous += r.n
    v = store.models.visit
    scope_v = (v.experience_id == experience_id) if experience_id else True
    reach = (v.select(v.experience_id, v.funnel_id, v.block,
                      fn.COUNT(v.conversation.distinct()).alias("n"))
             .where(scope_v).group_by(v.experience_id, v.funnel_id, v.block))
    for r in reach.namedtuples():
        get(r.experience_id, r.funnel_id).block(r.block).reached = r.n
    return [found[k] for k in sorted(found)]
