"""Helpers shared by the bench_*.py scripts (not a benchmark itself, never collected by pytest)."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/x.py` from anywhere, without installing
    sys.path.insert(0, str(ROOT))


def code_version() -> str:
    """The commit measured (read-only git), and whether the package had uncommitted edits."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "whopfunnel_plugin"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head or 'unknown'}{' + uncommitted package edits' if dirty else ''}"


def machine() -> str:
    return (f"nproc={os.cpu_count()} python={platform.python_version()} "
            f"sqlite={sqlite3.sqlite_version} platform={platform.platform()} code={code_version()}")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def summary(samples: list[float], scale: float = 1e3, unit: str = "ms") -> str:
    """min / median / p95 / max of timings in seconds, printed in `unit`."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return (f"min {ordered[0] * scale:.3f} {unit}, median {statistics.median(ordered) * scale:.3f} {unit}, "
            f"p95 {p95 * scale:.3f} {unit}, max {ordered[-1] * scale:.3f} {unit} (n={len(ordered)})")


@contextlib.contextmanager
def temp_dir(prefix: str = "wf_bench_", parent: str | None = None):
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        yield Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)
