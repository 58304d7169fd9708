"""`whopfunnel test`: pass/fail with a diff, coverage, JUnit, --min-coverage, bad test files."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner

from whopfunnel_plugin.cli import cli

from ..conftest import FUNNELS


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WHOPFUNNEL_CONFIG", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)

    def invoke(*args):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return invoke


def test_the_shipped_funnels_pass_with_full_block_and_option_coverage(run, tmp_path):
    result = run("test", FUNNELS, "--min-coverage", "100", "--coverage-out", tmp_path / "c.json")
    assert result.exit_code == 0, result.output
    assert "tests: " in result.output and " 0 failed" in result.output
    assert "coverage: blocks 6/6 (100%), options 4/4 (100%), escalation steps" in result.output
    assert "coverage: blocks 5/5 (100%), options 6/6 (100%)" in result.output  # the split funnel
    report = json.loads((tmp_path / "c.json").read_text())
    assert set(report["funnels"]) == {"onboarding", "qualification", "two-stage", "welcome-ab"}


def write(tmp_path, tests: str):
    (tmp_path / "f.yaml").write_bytes((FUNNELS / "onboarding.yaml").read_bytes())
    (tmp_path / "f.test.yaml").write_text(tests)


def test_a_failing_test_shows_a_diff_and_fails(run, tmp_path):
    write(tmp_path, """\
tests:
  - name: wrong welcome
    steps:
      - bot: "Welcome, friend! What brings you here today?"
  - name: wrong ending
    steps:
      - member: "2"
    expect: {status: abandoned}
  - name: a contains that is not there
    steps:
      - member: "1"
      - bot: {contains: "free ebook"}
""")
    result = run("test", tmp_path, "--junit", tmp_path / "j.xml")
    assert result.exit_code == 1
    out = result.output
    assert "  FAIL  wrong welcome\n        step 1 (line 4): the bot said something else\n" in out
    assert "        -Welcome, friend! What brings you here today?\n" in out
    assert "        +Welcome, friend! What brings you here?\n" in out
    assert ("  FAIL  wrong ending\n        the conversation ended differently\n"
            "        - status: abandoned\n        + status: completed\n") in out
    assert ("        - expected (contains): 'free ebook'\n"
            "        + actual: 'Here is the free guide: https://example.com/guide'\n") in out
    assert "3 tests: 0 passed, 3 failed" in out
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "3"
    failure = suite.find("testcase").find("failure")
    assert failure.get("message") == "step 1 (line 4): the bot said something else"
    assert "transcript:" in failure.text


def test_min_coverage_fails_and_lists_what_was_never_exercised(run, tmp_path):
    write(tmp_path, "tests:\n  - name: explorer\n    steps:\n      - member: '2'\n")
    result = run("test", tmp_path / "f.yaml", "--min-coverage", "90")
    assert result.exit_code == 1
    assert "1 test: 1 passed, 0 failed" in result.output
    assert "coverage: blocks 2/6 (33%), options 1/4 (25%), escalation steps 0/9 (0%)" in result.output
    assert "never exercised: block 'trading_guide', block 'email'" in result.output
    assert "option 1 (Trading & Investing) of 'welcome'" in result.output
    assert "coverage below --min-coverage 90%: onboarding: blocks 33%; onboarding: options 25%" \
        in result.output


def test_a_bad_test_file_is_one_line_per_problem(run, tmp_path):
    write(tmp_path, "tests:\n  - name: x\n    steps:\n      - bott: hi\n      - bot: {startswith: x}\n"
                    "    expect: {status: done}\n")
    result = run("test", tmp_path)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{tmp_path / 'f.test.yaml'}:4:9: unknown step 'bott' in step 1 of test 1; expected bot, "
        "member or wait",
        f"{tmp_path / 'f.test.yaml'}:5:14: bot in step 2 of test 1 must be a text (said exactly) or "
        "one of {exact: ...}, {contains: ...}, {regex: ...}",
        f"{tmp_path / 'f.test.yaml'}:6:22: status 'done' in test 1 is not one of active, completed, "
        "abandoned, handed_off, transitioned",
    ]


def test_a_funnel_without_tests_is_reported(run, tmp_path):
    (tmp_path / "f.yaml").write_bytes((FUNNELS / "onboarding.yaml").read_bytes())
    result = run("test", tmp_path / "f.yaml")
    assert f"  no tests: add {tmp_path / 'f.test.yaml'}" in result.output
    assert "coverage: blocks 0/6 (0%)" in result.output


def test_validate_skips_test_files_in_a_folder(run):
    assert "4 files: 0 errors, 0 warnings" in run("validate", FUNNELS).output
