"""Funnel analytics with known numbers, on every engine: `funnel_stats` after conversations
run through the public embedding API (see `tests/analytics_data.py` for the story)."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from whopfunnel_plugin.errors import SchemaOutOfDate, StorageError
from whopfunnel_plugin.storage.stats import Scope, funnel_stats, open_existing

from ..analytics_data import ENGINES, analytics_pm_fixture, onboarding_story  # noqa: F401


def figures(f):
    """Every per-block figure: (type, reached, answered, dropped, waiting, invalid,
    ambiguous, owner notifications, median and p90 seconds to answer)."""
    return {b.block: (b.type, b.reached, b.answered, b.dropped, b.waiting, b.invalid, b.ambiguous,
                      b.owner_notifications, b.answer_median, b.answer_p90) for b in f.blocks}


def options(f):
    return {(b.block, o.number): (o.text, o.chosen, o.by) for b in f.blocks for o in b.options}


def by(number=0, text=0, synonym=0, ordinal=0, typo=0):
    return {"number": number, "text": text, "synonym": synonym, "ordinal": ordinal, "typo": typo}


@pytest.mark.parametrize("engine", ENGINES)
def test_every_figure_per_funnel_version_and_tenant(analytics_pm, clock, engine):
    pm = analytics_pm(engine)
    onboarding_story(pm, clock)
    report = funnel_stats(pm.runtime.store)
    assert [(f.experience_id, f.funnel_id, f.name) for f in report] == [
        ("exp_1", "onboarding", "Onboarding"), ("exp_2", "onboarding", "Onboarding"),
        ("exp_2", "qualification", "Qualification")]
    one, two, qual = report
    assert one.version == two.version and len(one.version) == 16
    assert one.first_used == "2026-03-01T12:00:00Z"

    assert one.started == 8
    assert one.statuses == {"active": 1, "completed": 2, "abandoned": 4, "handed_off": 1,
                            "transitioned": 0}
    assert one.abandoned_by_reason == {"max_invalid_responses": 1, "timeout": 2,
                                       "membership_ended": 1, "manual": 0}
    assert one.end_reasons == {"completed": 2, "max_invalid_responses": 1, "timeout": 2,
                               "membership_ended": 1, "handoff": 1}
    assert [(e.block, e.type, e.count, e.rate) for e in one.endings] == [
        ("goodbye", "end", 2, 0.25), ("handoff", "handoff", 1, 0.125)]

    # breadth-first from `welcome`: its options' blocks, then theirs
    assert figures(one) == {
        #              type  reached answered dropped waiting invalid ambig. owner median  p90
        "welcome": ("question", 8, 5, 2, 1, 3, 0, 1, 12.0, 44.0),
        "trading_guide": ("message", 4, 0, 0, 0, 0, 0, 0, None, None),
        "goodbye": ("end", 2, 0, 0, 0, 0, 0, 0, None, None),
        "email": ("input", 4, 2, 2, 0, 1, 0, 0, 37.5, 43.5),
        "offer": ("question", 2, 2, 0, 0, 0, 0, 0, 27.5, 37.5),
        "handoff": ("handoff", 1, 0, 0, 0, 0, 0, 1, None, None),
    }
    assert list(figures(one)) == ["welcome", "trading_guide", "goodbye", "email", "offer", "handoff"]
    steps = {b.block: [(s.step, s.action, s.count) for s in b.escalation] for b in one.blocks}
    assert steps == {"welcome": [(1, "reprompt", 1), (2, "notify_owner", 1), (3, "abandon", 1)],
                     "trading_guide": [], "goodbye": [], "email": [(1, "reprompt", 1)],
                     "offer": [], "handoff": []}
    assert options(one) == {
        ("welcome", 1): ("Trading & Investing", 4, by(number=2, synonym=1, typo=1)),
        ("welcome", 2): ("Just exploring for now", 1, by(ordinal=1)),
        ("offer", 1): ("Yes, book me", 1, by(synonym=1)),
        ("offer", 2): ("No thanks", 1, by(text=1)),
    }
    ended = {b.block: b.ended for b in one.blocks if b.ended}
    assert ended == {"welcome": {"abandoned": 2}, "goodbye": {"completed": 2},
                     "email": {"abandoned": 2}, "handoff": {"handed_off": 1}}
    assert one.splits == []

    assert (two.started, two.statuses["completed"], two.endings[0].rate) == (1, 1, 1.0)
    assert options(two)[("welcome", 2)] == ("Just exploring for now", 1, by(number=1))
    assert figures(two)["welcome"] == ("question", 1, 1, 0, 0, 0, 0, 0, 3.0, 3.0)

    assert (qual.started, qual.statuses["active"], qual.end_reasons) == (1, 1, {})
    assert figures(qual)["experience_qualification"] == ("question", 1, 1, 0, 0, 0, 1, 0, 7.0, 7.0)
    assert figures(qual)["pain_point_qualification"] == ("question", 1, 0, 0, 1, 0, 0, 0, None, None)
    assert options(qual)[("experience_qualification", 1)] == (
        "Beginner (under 1 year)", 1, by(synonym=1))


@pytest.mark.parametrize("engine", ENGINES)
def test_the_scope_filters_tenant_funnel_and_start_date(analytics_pm, clock, engine):
    pm = analytics_pm(engine)
    start = clock.now()
    onboarding_story(pm, clock)
    store = pm.runtime.store
    only = funnel_stats(store, Scope(experience_id="exp_2"))
    assert [(f.experience_id, f.funnel_id, f.started) for f in only] == [
        ("exp_2", "onboarding", 1), ("exp_2", "qualification", 1)]
    assert [f.funnel_id for f in funnel_stats(store, Scope(funnel_id="qualification"))] == [
        "qualification"]
    assert funnel_stats(store, Scope(experience_id="exp_nobody")) == []
    # u_done, u_esc, u_hand and u_typo joined in the first 8 minutes; the others later
    cut = start + timedelta(minutes=8)
    early = funnel_stats(store, Scope(until=cut))
    assert [(f.experience_id, f.started) for f in early] == [("exp_1", 4)]
    assert figures(early[0])["welcome"][:7] == ("question", 4, 3, 1, 0, 3, 0)
    late = funnel_stats(store, Scope(experience_id="exp_1", since=cut))
    assert [(f.started, f.statuses["active"], f.statuses["completed"]) for f in late] == [(4, 1, 1)]


def test_progress_is_reported_after_each_statement(analytics_pm, clock):
    pm = analytics_pm()
    onboarding_story(pm, clock)
    calls = []
    funnel_stats(pm.runtime.store, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(n, 8) for n in range(1, 9)]


def test_one_connection_or_several_give_the_same_figures(analytics_pm, clock):
    pm = analytics_pm()
    onboarding_story(pm, clock)
    store = pm.runtime.store
    assert funnel_stats(store, workers=1) == funnel_stats(store, workers=2)
    with store.db.atomic() as txn:  # rows the caller has not committed are only on its connection
        store.db.execute_sql("UPDATE conversations SET status = 'completed', end_reason = "
                             "'completed' WHERE user_id = 'u_typo2'")
        inside = funnel_stats(store, Scope(experience_id="exp_1"), workers=2)
        txn.rollback()
    assert funnel_stats(store, Scope(experience_id="exp_1"))[0].statuses["active"] == 1
    assert (inside[0].statuses["active"], inside[0].statuses["completed"]) == (0, 3)


def test_a_database_with_nothing_in_it(sqlite_store):
    assert funnel_stats(sqlite_store) == []


def test_open_existing_never_creates_a_sqlite_file(tmp_path):
    missing = tmp_path / "nothing.db"
    with pytest.raises(StorageError) as failed:
        open_existing(f"sqlite:///{missing}")
    assert str(failed.value) == (f"no database file {missing}: create it with `whopfunnel db "
                                 "upgrade`, or name another with --db")
    assert not missing.exists()
    conn = sqlite3.connect(missing)  # a database, but not ours
    conn.execute("CREATE TABLE other (x)")
    conn.close()
    with pytest.raises(SchemaOutOfDate, match="run `whopfunnel db upgrade`"):
        open_existing(f"sqlite:///{missing}")


def test_a_definition_from_a_newer_whopfunnel_still_orders_its_blocks():
    from whopfunnel_plugin.storage.funnel_shape import block_order

    definition = {"start": "s", "escalation": [{"message": "x", "action": "goto", "goto": "help"}],
                  "blocks": {"orphan": {"type": "end"}, "help": {"type": "end"},
                             "a": {"type": "question", "options": [{"next": "end"}],
                                   "escalation": None},
                             "s": {"type": "split", "branches": [{"weight": 1, "next": "a"},
                                                                 {"weight": 1, "next": "b"}]},
                             "b": {"type": "wizard", "next": "end"}, "end": {"type": "end"}}}
    assert block_order(definition, ["gone", "a"]) == ["s", "a", "b", "end", "help", "orphan", "gone"]


def test_the_since_filter_compares_like_the_stored_times(sqlite_store):
    """SQLite keeps times as text: the parameter must be written the same way."""
    from whopfunnel_plugin.storage.stats_sql import Dialect

    d = Dialect(sqlite_store.db, "sqlite")
    assert d.when(datetime(2026, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))) == \
        "2026-03-01 12:00:00"
