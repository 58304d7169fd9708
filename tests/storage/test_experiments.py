"""Split tests: the branches' draws and conversions, with 95% Wilson intervals checked
against a computation by hand, on every engine."""

from __future__ import annotations

import pytest

from whopfunnel_plugin.storage.experiments import Branch, compare, wilson
from whopfunnel_plugin.storage.stats import funnel_stats

from ..analytics_data import ENGINES, analytics_pm_fixture, split_story  # noqa: F401

# Known draws: branch 1 (the short welcome) got 12 conversations, 3 bought, 7 said no,
# 2 never answered; branch 2 (the long one) got 10: 7 bought, 2 said no, 1 is waiting.
DRAWS = {0: (3, 7, 2), 1: (7, 2, 1)}

# By hand, the Wilson score interval with z = 1.96 (z^2 = 3.8415):
#   centre = (p + z^2/2n) / (1 + z^2/n),  half = z * sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n)
# branch 1, buy 3/12: p = 0.25, 1 + z^2/n = 1.32012
#   centre = (0.25 + 0.16006) / 1.32012 = 0.31062
#   half = 1.96 * sqrt(0.015625 + 0.006669) / 1.32012 = 1.96 * 0.14931 / 1.32012 = 0.22168
#   -> [0.0889, 0.5323]
# branch 2, buy 7/10: p = 0.7, 1 + z^2/n = 1.38415
#   centre = (0.7 + 0.19207) / 1.38415 = 0.64449
#   half = 1.96 * sqrt(0.021 + 0.009604) / 1.38415 = 1.96 * 0.17494 / 1.38415 = 0.24772
#   -> [0.3968, 0.8922]
# The intervals overlap (0.5323 > 0.3968): 25% against 70% is not yet significant.
# branch 1, bye 7/12: p = 0.58333; centre = (0.58333 + 0.16006) / 1.32012 = 0.56313
#   half = 1.96 * sqrt(0.020255 + 0.006669) / 1.32012 = 1.96 * 0.16409 / 1.32012 = 0.24362
#   -> [0.3195, 0.8067]
# branch 2, bye 2/10: p = 0.2; centre = (0.2 + 0.19207) / 1.38415 = 0.28326
#   half = 1.96 * sqrt(0.016 + 0.009604) / 1.38415 = 1.96 * 0.16001 / 1.38415 = 0.22658
#   -> [0.0567, 0.5098]
# shares of the 22 draws: 12/22 -> [0.3466, 0.7308], 10/22 -> [0.2692, 0.6534]
BY_HAND = {
    (0, "buy"): (3, 12, 0.0889, 0.5323), (1, "buy"): (7, 10, 0.3968, 0.8922),
    (0, "bye"): (7, 12, 0.3195, 0.8067), (1, "bye"): (2, 10, 0.0567, 0.5098),
}


def close(a, b):
    return a == pytest.approx(b, abs=5e-4)


@pytest.mark.parametrize("engine", ENGINES)
def test_split_branches_with_intervals_checked_by_hand(analytics_pm, clock, engine):
    pm = analytics_pm(engine)
    split_story(pm, clock, DRAWS)
    (f,) = funnel_stats(pm.runtime.store)
    assert (f.experience_id, f.funnel_id, f.started) == ("exp_ab", "ab", 22)
    assert [b.block for b in f.blocks][:3] == ["pick", "welcome_a", "welcome_b"]
    pick = f.block("pick")
    assert (pick.type, pick.reached, pick.answered, pick.options) == ("split", 22, 0, [])
    assert (f.block("welcome_a").reached, f.block("welcome_b").reached) == (12, 10)

    (split,) = f.splits
    assert split.block == "pick"
    assert split.endings == ["buy", "bye"]
    assert split.columns == ["buy", "bye", "abandoned", "active"]
    one, two = split.branches
    assert [(b.index, b.next, b.weight, b.drawn) for b in split.branches] == [
        (0, "welcome_a", 50, 12), (1, "welcome_b", 50, 10)]
    assert close(one.share.low, 0.3466) and close(one.share.high, 0.7308)
    assert close(two.share.low, 0.2692) and close(two.share.high, 0.6534)
    for (index, ending), (count, total, low, high) in BY_HAND.items():
        rate = split.branches[index].outcomes[ending]
        assert (rate.count, rate.total) == (count, total)
        assert rate.rate == pytest.approx(count / total)
        assert close(rate.low, low) and close(rate.high, high), (index, ending, rate)
    assert [(one.outcomes[k].count, two.outcomes[k].count) for k in ("abandoned", "active")] == [
        (0, 0), (2, 1)]
    assert [(v.ending, v.significant, v.text) for v in split.verdicts] == [
        ("buy", False, "buy: the difference is not yet significant (the 95% intervals overlap); "
                       "keep the test running"),
        ("bye", False, "bye: the difference is not yet significant (the 95% intervals overlap); "
                       "keep the test running")]


def test_a_clear_difference_is_called_significant():
    # 5/100 against 40/100: [0.0215, 0.1118] and [0.3094, 0.4980] do not overlap
    a, b = Branch(0, "a", 1, 100), Branch(1, "b", 1, 100)
    a.outcomes, b.outcomes = {"buy": wilson(5, 100)}, {"buy": wilson(40, 100)}
    assert close(a.outcomes["buy"].high, 0.1118) and close(b.outcomes["buy"].low, 0.3094)
    verdict = compare([a, b], "buy")
    assert (verdict.significant, verdict.leader) == (True, 1)
    assert verdict.text == ("buy: branch 2 converts best (40.0%); significant at 95% "
                            "(its interval overlaps no other branch's)")


def test_wilson_edge_cases():
    assert wilson(0, 0).rate is None and wilson(0, 0).low is None
    zero, every = wilson(0, 10), wilson(10, 10)
    assert (zero.low, every.high) == (0.0, 1.0)
    assert close(zero.high, 0.2775) and close(every.low, 0.7225)
    lone = Branch(0, "a", 1, 3)
    lone.outcomes = {"buy": wilson(1, 3)}
    assert compare([lone, Branch(1, "b", 1, 0)], "buy").text == (
        "buy: not enough data yet (fewer than two branches have been drawn)")
