"""Helpers shared by the bench_*.py scripts (not a benchmark itself, never collected by pytest)."""

from __future__ import annotations

import contextlib
import cProfile
import io
import logging
import os
import platform
import pstats
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/x.py` from anywhere, without installing
    sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("WHOPFUNNEL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


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


def rss_mb() -> float:
    """Current resident set size, from /proc (falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


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


@contextlib.contextmanager
def postgres_database():
    """A freshly created, uniquely named PostgreSQL database; dropped afterwards. Yields its URL."""
    import psycopg2

    name = f"wf_bench_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(PG_ADMIN.replace("postgresql://", "postgres://"), connect_timeout=3)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


class StatementRecorder(logging.Handler):
    """Records every (sql, params) Peewee sends, through the `peewee` DEBUG logger.

    BEGIN/COMMIT issued by Peewee's transaction machinery bypass the logger; they are
    not counted here (the caller knows how many transactions it ran).
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[tuple[str, tuple]] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.msg
        if isinstance(msg, tuple) and len(msg) == 2:
            self.statements.append((msg[0], tuple(msg[1] or ())))

    @contextlib.contextmanager
    def recording(self):
        logger = logging.getLogger("peewee")
        old_level = logger.level
        logger.addHandler(self)
        logger.setLevel(logging.DEBUG)
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.setLevel(old_level)


def profile(fn, top: int = 25, sort: str = "tottime") -> str:
    """Run fn under cProfile; return the top functions as text."""
    prof = cProfile.Profile()
    prof.enable()
    try:
        fn()
    finally:
        prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(top)
    return out.getvalue()
