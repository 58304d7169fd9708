"""`whopfunnel stats` as a user sees it: the table, JSON and CSV, the filters, the errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from whopfunnel_plugin.cli import cli
from whopfunnel_plugin.cli.scope import Progress

from ..analytics_data import ENGINES, analytics_pm_fixture, onboarding_story, split_story  # noqa: F401

EXP_2_TABLE = Path(__file__).with_name("stats_exp_2.txt")  # what `stats` prints, exactly


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WHOPFUNNEL_CONFIG", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)

    def invoke(*args):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture
def story(analytics_pm, clock):
    """The onboarding story in the database plugin.yaml names; the manager closed."""
    def make(engine="sqlite", split=False):
        pm = analytics_pm(engine)
        onboarding_story(pm, clock)
        if split:
            split_story(pm, clock, {0: (3, 7, 2), 1: (7, 2, 1)})
        version = pm.runtime.store.db.execute_sql(
            "SELECT version FROM funnels WHERE funnel_id = 'qualification'").fetchone()[0]
        pm.runtime.close()
        return version

    return make


def test_the_table_for_one_tenant_and_funnel(run, story):
    version = story()
    result = run("stats", "--experience", "exp_2", "--funnel", "qualification")
    assert result.exit_code == 0, result.output
    assert result.output == EXP_2_TABLE.read_text().format(version=version)


def test_the_table_puts_blocks_in_funnel_order_with_every_column(run, story):
    story(split=True)
    out = run("stats", "--experience", "exp_1").output
    lines = out.splitlines()
    assert lines[3] == "  8 started: 1 active, 2 completed, 4 abandoned, 1 handed off, 0 transitioned"
    assert lines[4] == ("  abandoned by reason: max_invalid_responses 1, timeout 2, membership_ended 1, "
                        "manual 0")
    assert lines[5] == "  conversion from start: goodbye 2 (25.0%), handoff 1 (12.5%)"
    rows = [line.split()[:2] for line in lines[8:14]]
    assert [r[0] for r in rows] == ["welcome", "trading_guide", "goodbye", "email", "offer", "handoff"]
    assert lines[8].split() == ["welcome", "question", "8", "5", "2", "1", "3", "0", "1", "12s", "44s"]
    assert lines[11].split() == ["email", "input", "4", "2", "2", "0", "1", "0", "0", "37.5s", "43.5s"]
    assert ("  escalation steps taken: welcome: step 1 reprompt 1, step 2 notify_owner 1, "
            "step 3 abandon 1; email: step 1 reprompt 1") in lines
    assert "  welcome        1. Trading & Investing          4      2      0       1       0      1" in lines

    split = run("stats", "--experience", "exp_ab").output.splitlines()
    start = split.index("  split test at pick:")
    assert split[start + 1:start + 4] == [
        "    branch 1 -> welcome_a: drawn 12 (54.5% of draws, weight 50)",
        "      buy            3/12     25.0%  95% interval 8.9% to 53.2%",
        "      bye            7/12     58.3%  95% interval 32.0% to 80.7%"]
    assert split[-2:] == [
        "    buy: the difference is not yet significant (the 95% intervals overlap); keep the test running",
        "    bye: the difference is not yet significant (the 95% intervals overlap); keep the test running"]


@pytest.mark.parametrize("engine", ENGINES)
def test_json_has_every_figure(run, story, engine):
    story(engine, split=True)
    result = run("stats", "--format", "json", "--since", "2026-03-01", "--until", "2026-03-02")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["filters"] == {
        "tenant": "all tenants", "funnel": "all funnels", "from": "2026-03-01",
        "to": "2026-03-02 (inclusive)",
        "scope": {"experience_id": None, "funnel_id": None, "since": "2026-03-01T00:00:00Z",
                  "until": "2026-03-03T00:00:00Z"}}
    # the story's last members joined on 2026-03-02, after the 25-hour wait: all in range
    assert [(f["experience_id"], f["funnel_id"], f["started"]) for f in data["funnels"]] == [
        ("exp_1", "onboarding", 8), ("exp_2", "onboarding", 1), ("exp_2", "qualification", 1),
        ("exp_ab", "ab", 22)]
    one = data["funnels"][0]
    welcome = one["blocks"][0]
    assert {k: welcome[k] for k in ("block", "type", "reached", "answered", "dropped", "waiting",
                                    "invalid", "ambiguous", "owner_notifications",
                                    "answer_median", "answer_p90")} == {
        "block": "welcome", "type": "question", "reached": 8, "answered": 5, "dropped": 2,
        "waiting": 1, "invalid": 3, "ambiguous": 0, "owner_notifications": 1,
        "answer_median": 12.0, "answer_p90": 44.0}
    assert welcome["escalation"] == [{"step": 1, "action": "reprompt", "count": 1},
                                     {"step": 2, "action": "notify_owner", "count": 1},
                                     {"step": 3, "action": "abandon", "count": 1}]
    assert welcome["options"][0]["by"] == {"number": 2, "text": 0, "synonym": 1, "ordinal": 0,
                                           "typo": 1}
    assert one["endings"] == [{"block": "goodbye", "type": "end", "count": 2, "rate": 0.25},
                              {"block": "handoff", "type": "handoff", "count": 1, "rate": 0.125}]
    branch = data["funnels"][3]["splits"][0]["branches"][1]
    assert (branch["drawn"], branch["outcomes"]["buy"]["count"]) == (10, 7)
    assert round(branch["outcomes"]["buy"]["low"], 4) == 0.3968
    only_first_day = json.loads(run("stats", "--format", "json", "--until", "2026-03-01").output)
    assert [f["started"] for f in only_first_day["funnels"]] == [7]


def test_csv_is_one_figure_per_row(run, story):
    story(split=True)
    result = run("stats", "--format", "csv", "--experience", "exp_1")
    assert result.exit_code == 0
    table = list(csv.reader(io.StringIO(result.output)))
    assert table[0] == ["experience_id", "funnel_id", "version", "section", "block", "item",
                        "metric", "value"]
    by_key = {tuple(r[3:7]): r[7] for r in table[1:]}
    assert {tuple(row[:2]) for row in table[1:]} == {("exp_1", "onboarding")}
    assert by_key[("funnel", "", "", "started")] == "8"
    assert by_key[("abandoned", "", "timeout", "conversations")] == "2"
    assert by_key[("ending", "handoff", "handoff", "rate")] == "0.125"
    assert by_key[("block", "email", "input", "answer_median")] == "37.5"
    assert by_key[("block", "trading_guide", "message", "answer_median")] == ""
    assert by_key[("escalation", "welcome", "step 2 notify_owner", "invalid replies")] == "1"
    assert by_key[("option", "offer", "2. No thanks", "by text")] == "1"
    split = list(csv.reader(io.StringIO(run("stats", "--format", "csv", "--funnel", "ab").output)))
    assert ["exp_ab", "ab", split[1][2], "split", "pick", "branch 1 -> welcome_a", "buy count", "3"] \
        in split


def test_db_option_takes_a_url_or_a_file_and_needs_no_plugin_yaml(run, story, tmp_path):
    story()
    path = tmp_path / "wf-copy.db"
    url = (tmp_path / "plugin.yaml").read_text().split("database: ", 1)[1].split("\n", 1)[0]
    (tmp_path / "plugin.yaml").rename(tmp_path / "elsewhere.yaml")
    (tmp_path / url.split("sqlite:///", 1)[1]).rename(path)
    for db in (path, f"sqlite:///{path}"):
        result = run("stats", "--db", db, "--experience", "exp_2", "--format", "csv")
        assert result.exit_code == 0, result.output
        assert result.output.count("\nexp_2,") > 10


def test_read_only_commands_never_create_a_database(run, tmp_path):
    for args, missing in ((["stats"], "whopfunnel.db"),
                          (["stats", "--db", "other.db"], tmp_path / "other.db"),
                          (["report", "--out", "r.html"], "whopfunnel.db")):
        result = run(*args)
        assert (result.exit_code, result.output) == (
            1, f"error: no database file {missing}: create it with `whopfunnel db upgrade`, "
               "or name another with --db\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--since", "yesterday"], "error: --since: 'yesterday' is not a date like 2026-03-01 or an "
                               "ISO 8601 time like 2026-03-01T12:00:00Z"),
    (["--until", "2026-13-01"], "error: --until: '2026-13-01' is not a date like 2026-03-01 or an "
                                "ISO 8601 time like 2026-03-01T12:00:00Z"),
    (["--since", "2026-03-05", "--until", "2026-03-01"],
     "error: --since 2026-03-05 is not before --until 2026-03-01"),
    (["--db", "ftp://x/y"], "error: unsupported database URL scheme 'ftp'; use sqlite:///, "
                            "postgresql:// or mysql://"),
])
def test_bad_input_is_one_line_naming_the_option(run, story, args, message):
    story()
    result = run("stats", *args)
    assert (result.exit_code, result.output) == (1, message + "\n")


def test_an_empty_database(run, story, tmp_path):
    story()
    result = run("stats", "--experience", "exp_nobody", "--since", "2026-03-01T12:00:00Z")
    assert result.output == ("tenant: exp_nobody; funnel: all funnels; conversations started "
                             "from 2026-03-01T12:00:00Z to now\nno conversations yet\n")


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Ticks:
    def __init__(self, *times):
        self.times = list(times)

    def __call__(self):
        return self.times.pop(0) if len(self.times) > 1 else self.times[0]


def test_the_progress_bar_shows_only_on_a_terminal_once_it_runs_long():
    quick = Terminal()
    bar = Progress("aggregating", stream=quick, clock=Ticks(0.0, 0.2, 0.4, 0.6))
    for done in (1, 2, 3):
        bar(done, 3)
    bar.close()
    assert quick.getvalue() == ""  # done within a second: nothing drawn

    slow = Terminal()
    bar = Progress("aggregating", stream=slow, clock=Ticks(0.0, 0.5, 1.5))
    for done in range(1, 9):
        bar(done, 8)
    bar.close()
    assert "aggregating" in slow.getvalue() and "100%" in slow.getvalue()

    piped = io.StringIO()  # not a terminal: never drawn, however long it takes
    bar = Progress("aggregating", stream=piped, clock=Ticks(0.0, 99.0))
    bar(1, 2)
    bar.close()
    assert piped.getvalue() == ""


def test_stats_output_goes_to_stdout_and_nothing_to_stderr(run, story):
    story()
    result = CliRunner().invoke(cli, ["stats", "--format", "json"])
    assert result.exit_code == 0 and result.stderr == ""
    json.loads(result.stdout)
