"""Funnel analytics from the stored interactions: reach, drop-off and end reasons.

Everything is computed with grouped queries per tenant, never by loading conversations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peewee import fn

from . import store as s


@dataclass
class BlockStats:
    block: str
    reached: int = 0        # conversations that were asked this block
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


def funnel_stats(store: s.Store, experience_id: str | None = None) -> list[FunnelStats]:
    c, i = s.ConversationRow, s.InteractionRow
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
    # reach: distinct conversations with a reply on the block, plus those resting on it
    replies = (i.select(i.experience_id, i.funnel_id, i.block, i.classification,
                        fn.COUNT(i.id).alias("n"))
               .where(scope_i).group_by(i.experience_id, i.funnel_id, i.block, i.classification))
    for r in replies.namedtuples():
        b = get(r.experience_id, r.funnel_id).block(r.block)
        if r.classification == "invalid":
            b.invalid += r.n
        elif r.classification == "ambiguous":
            b.ambiguous += r.n
    reach = (c.select(c.experience_id, c.funnel_id, i.block,
                      fn.COUNT(c.id.distinct()).alias("n"))
             .join(i, on=(i.conversation == c.id)).where(scope_c)
             .group_by(c.experience_id, c.funnel_id, i.block))
    for r in reach.namedtuples():
        get(r.experience_id, r.funnel_id).block(r.block).reached = r.n
    resting = (c.select(c.experience_id, c.funnel_id, c.block, fn.COUNT(c.id).alias("n"))
               .where(scope_c & ~fn.EXISTS(i.select(i.id).where(
                   (i.conversation == c.id) & (i.block == c.block))))
               .group_by(c.experience_id, c.funnel_id, c.block))
    for r in resting.namedtuples():
        get(r.experience_id, r.funnel_id).block(r.block).reached += r.n
    return [found[k] for k in sorted(found)]
