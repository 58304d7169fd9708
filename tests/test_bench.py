"""The benchmark harness still runs against the package (its figures are not checked here:
no timed assertions in tests; `python bench/run_all.py` is where the numbers come from)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_run_all_quick_engine_figure_writes_a_report_row():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "run_all.py"), "--quick", "--only", "engine"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "## The issue's table, measured in this run" in out.stdout
    row = next(line for line in out.stdout.splitlines() if line.startswith("| engine CPU per reply"))
    assert "not measured" not in row, row
    assert "µs" in row
