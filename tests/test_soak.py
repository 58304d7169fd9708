"""The soak of bench/soak.py, shortened: 40 members, 2 workers, 1 SIGKILL restart, 1 restart
of a private PostgreSQL cluster, Whop misbehaving in between. Nothing lost, duplicated,
reordered or wrong, no hook call twice, and every recovery within SPEC §6's 30 s."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from .conftest import ROOT
from .tools import postgres_bin


def load_soak():
    """bench/soak.py as a module (bench/ is no package), the harness itself, not a copy."""
    name = "wf_bench_soak"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "soak.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL server binaries (initdb) are missing")
def test_the_short_soak_loses_duplicates_reorders_and_corrupts_nothing():
    soak = load_soak()
    options = soak.Options(members=40, workers=2, kills=1, db_restarts=1, timeout=6,
                           arrive_over=25, down_for=(1.0, 1.0))
    summary = soak.run_soak(options, log=lambda line: None)
    report = summary.text()
    assert summary.counts() == {"lost": 0, "duplicated": 0, "reordered": 0, "wrong state": 0,
                                "hooks fired twice": 0}, report
    kinds = [r.fault for r in summary.recoveries]
    assert kinds.count("DB restart") == 1 and sum(k.startswith("SIGKILL") for k in kinds) == 1
    assert summary.max_recovery is not None and summary.max_recovery <= soak.BOUND, report
    assert not summary.problems, report
    info = summary.findings.info
    # The run did what it says: conversations ended every way, and copies were refused.
    assert info["outbox rows"] > 40 and info["outbox rows"] == info["visible messages"], report
    assert info["ended abandoned/timeout"] and info["ended completed/completed"], report
    assert any(k.startswith("webhooks ") and " copy " in k for k in info), report
    assert summary.passed, report
