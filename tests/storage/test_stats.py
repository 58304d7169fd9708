"""Funnel analytics: `funnel_stats` and `whopfunnel stats` after real conversations."""

from __future__ import annotations

import itertools

import pytest
from click.testing import CliRunner

from whopfunnel_plugin.cli import cli
from whopfunnel_plugin.events import MemberJoined, MessageReceived
from whopfunnel_plugin.funnel.model import load_funnel
from whopfunnel_plugin.service.host import Host
from whopfunnel_plugin.storage.stats import BlockStats, funnel_stats
from whopfunnel_plugin.storage.store import Store

from ..conftest import FUNNELS

FUNNEL_SET = {name: load_funnel(FUNNELS / f"{name}.yaml") for name in ("onboarding", "qualification")}


def drive(store, clock):
    """Conversations in two tenants: one of each ending, and some still running."""
    host = Host(store, FUNNEL_SET, clock=clock,
                route=lambda e: "qualification" if e.product_id == "prod_q" else "onboarding")
    ids = itertools.count()

    def join(user, exp="exp_1", **kw):
        host.join(MemberJoined(experience_id=exp, user_id=user, **kw))

    def say(user, *texts, exp="exp_1"):
        for text in texts:
            host.message(MessageReceived(experience_id=exp, user_id=user, text=text,
                                         message_id=f"m{next(ids)}"))

    join("u_late")
    say("u_late", "1")                                 # waits on email, then times out
    clock.advance(hours=25)
    assert host.sweep().total == 1
    join("u_done")
    say("u_done", "1", "nope", "ada@example.com", "no thanks")  # completed, 1 invalid on email
    join("u_esc")
    say("u_esc", "what?", "huh", "no idea")            # abandoned by the escalation ladder
    join("u_wait")
    say("u_wait", "1", "not-an-email")                 # still active on email
    join("q_1", "exp_2", product_id="prod_q")
    say("q_1", "beginner", exp="exp_2")                # active on the second question
    join("o_1", "exp_2")
    say("o_1", "2", exp="exp_2")                       # completed at once


def blocks(f):
    return {name: (b.reached, b.here_now, b.dropped, b.invalid) for name, b in f.blocks.items()}


def test_funnel_stats_per_funnel_and_tenant(store, clock):
    drive(store, clock)
    report = funnel_stats(store)
    assert [(f.experience_id, f.funnel_id) for f in report] == [
        ("exp_1", "onboarding"), ("exp_2", "onboarding"), ("exp_2", "qualification")]
    one, two_onboarding, two_qualification = report

    assert one.started == 4
    assert one.statuses == {"active": 1, "completed": 1, "abandoned": 2}
    assert one.end_reasons == {"completed": 1, "max_invalid_responses": 1, "timeout": 1}
    #                      reached waiting dropped invalid
    assert blocks(one) == {"welcome": (4, 0, 1, 3),
                           "trading_guide": (3, 0, 0, 0),
                           "email": (3, 1, 1, 2),
                           "offer": (1, 0, 0, 0),
                           "goodbye": (1, 0, 0, 0)}

    assert (two_onboarding.started, two_onboarding.statuses, two_onboarding.end_reasons) == (
        1, {"completed": 1}, {"completed": 1})
    assert blocks(two_onboarding) == {"welcome": (1, 0, 0, 0), "goodbye": (1, 0, 0, 0)}
    assert (two_qualification.started, two_qualification.statuses,
            two_qualification.end_reasons) == (1, {"active": 1}, {})
    assert blocks(two_qualification) == {"experience_qualification": (1, 0, 0, 0),
                                         "pain_point_qualification": (1, 1, 0, 0)}


def test_funnel_stats_for_one_tenant(store, clock):
    drive(store, clock)
    report = funnel_stats(store, "exp_2")
    assert [(f.experience_id, f.funnel_id, f.started) for f in report] == [
        ("exp_2", "onboarding", 1), ("exp_2", "qualification", 1)]
    assert funnel_stats(store, "exp_nobody") == []


def test_ambiguous_replies_are_counted_apart_from_invalid(sqlite_store, clock):
    host = Host(sqlite_store, {"qualification": FUNNEL_SET["qualification"]}, clock=clock)
    host.join(MemberJoined(experience_id="exp_1", user_id="u"))
    host.message(MessageReceived(experience_id="exp_1", user_id="u", message_id="m1",
                                 text="1 or 3"))
    host.message(MessageReceived(experience_id="exp_1", user_id="u", message_id="m2",
                                 text="no clue"))
    (f,) = funnel_stats(sqlite_store)
    b = f.blocks["experience_qualification"]
    assert (b.reached, b.here_now, b.dropped, b.invalid, b.ambiguous) == (1, 1, 0, 1, 1)


def test_message_blocks_passed_through_count_as_reached(sqlite_store, clock):
    drive(sqlite_store, clock)
    one = funnel_stats(sqlite_store, "exp_1")[0]
    # u_late, u_done and u_wait were all sent the free guide on their way to the email question
    assert one.blocks.get("trading_guide", BlockStats("trading_guide")).reached == 3


# -- the command ------------------------------------------------------------------------------


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WHOPFUNNEL_CONFIG", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)

    def invoke(*args):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture
def database(tmp_path, db_url_factory):
    url = db_url_factory("sqlite")
    (tmp_path / "plugin.yaml").write_text(f"database: {url}\n")
    return url


def test_the_stats_command(run, database, clock):
    store = Store(database)
    store.upgrade()
    try:
        drive(store, clock)
    finally:
        store.close()
    result = run("stats")
    assert result.exit_code == 0
    header = "  block                         reached  waiting  dropped  invalid"
    assert result.output.splitlines() == [
        "exp_1 / onboarding: 4 conversations, 1 active; ended: completed 1, "
        "max_invalid_responses 1, timeout 1",
        header,
        "  welcome                             4        0        1        3",
        "  email                               3        1        1        2",
        "  trading_guide                       3        0        0        0",
        "  goodbye                             1        0        0        0",
        "  offer                               1        0        0        0",
        "exp_2 / onboarding: 1 conversation, 0 active; ended: completed 1",
        header,
        "  goodbye                             1        0        0        0",
        "  welcome                             1        0        0        0",
        "exp_2 / qualification: 1 conversation, 1 active; ended: none yet",
        header,
        "  experience_qualification            1        0        0        0",
        "  pain_point_qualification            1        1        0        0",
    ]

    scoped = run("stats", "--experience", "exp_2")
    assert scoped.exit_code == 0
    assert "exp_1" not in scoped.output
    assert [line for line in scoped.output.splitlines() if " / " in line] == [
        "exp_2 / onboarding: 1 conversation, 0 active; ended: completed 1",
        "exp_2 / qualification: 1 conversation, 1 active; ended: none yet"]


def test_the_stats_command_on_an_empty_database(run, database, tmp_path):
    store = Store(database)
    store.upgrade()
    store.close()
    result = run("stats")
    assert (result.exit_code, result.output) == (0, "no conversations yet\n")
    other = tmp_path / "other.yaml"
    other.write_text(f"database: {database}\n")
    result = run("stats", "--experience", "exp_1", "--config", other)
    assert (result.exit_code, result.output) == (0, "no conversations yet\n")


def test_the_stats_command_refuses_a_database_without_the_schema(run, database):
    result = run("stats")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert result.output.startswith("error: ")
    assert "run `whopfunnel db upgrade`" in result.output
