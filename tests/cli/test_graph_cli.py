"""`whopfunnel graph` on the command line: files written, --coverage, --stats from a database."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from whopfunnel_plugin.cli import cli

from ..conftest import FUNNELS


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WHOPFUNNEL_CONFIG", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)

    def invoke(*args, input=None):
        return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


def test_graph_writes_svg_mermaid_and_dot(run, tmp_path):
    funnel = tmp_path / "onboarding.yaml"
    funnel.write_bytes((FUNNELS / "onboarding.yaml").read_bytes())
    assert run("graph", funnel).exit_code == 0
    assert (tmp_path / "onboarding.svg").read_text().startswith("<svg ")
    assert run("graph", funnel, "--format", "mermaid").exit_code == 0
    assert (tmp_path / "onboarding.mmd").read_text().startswith("flowchart TD")
    out = run("graph", funnel, "--format", "dot", "-o", "-").output
    assert out.startswith('digraph "onboarding" {')


def test_graph_with_the_coverage_of_whopfunnel_test(run, tmp_path):
    run("test", FUNNELS, "--coverage-out", tmp_path / "cov.json")
    out = run("graph", FUNNELS / "onboarding.yaml", "--coverage", tmp_path / "cov.json", "-o", "-")
    assert "counts shown, unreached greyed" in out.output
    assert "unreached" not in out.output.split("</title>", 1)[1].replace("unreached greyed", "")
    bad = run("graph", FUNNELS / "onboarding.yaml", "--coverage", FUNNELS / "onboarding.yaml")
    assert bad.exit_code == 1 and "not a coverage file from `whopfunnel test --coverage-out`" in bad.output


def test_graph_stats_counts_from_a_database(run, tmp_path):
    db = tmp_path / "c.db"
    run("chat", FUNNELS / "onboarding.yaml", "--db", db, "--as", "a", input="2\n")
    run("chat", FUNNELS / "onboarding.yaml", "--db", db, "--as", "b", input="2\n")
    run("chat", FUNNELS / "onboarding.yaml", "--db", db, "--as", "c", input="1\nnope\n")
    out = run("graph", FUNNELS / "onboarding.yaml", "--stats", "--db", f"sqlite:///{db}", "-o", "-")
    assert out.exit_code == 0, out.output
    svg = out.output
    assert "Just exploring for now (2)" in svg and "Trading &amp; Investing (1)" in svg
    assert "welcome  ·  question (3)" in svg and "email  ·  input (1)" in svg
    assert 'class="node question unreached" id="block-offer"' in svg


def test_graph_stats_never_creates_a_database(run, tmp_path):
    out = run("graph", FUNNELS / "onboarding.yaml", "--stats", "--db", f"sqlite:///{tmp_path / 'no.db'}")
    assert out.exit_code == 1
    assert out.output == f"error: no database at sqlite:///{tmp_path / 'no.db'} (graph --stats only reads)\n"
    assert not (tmp_path / "no.db").exists()
