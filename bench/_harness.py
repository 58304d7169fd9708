"""What every figure of `run_all.py` shares: worker processes, statistics, the machine,
progress on stderr, and a cProfile summary that says where the time goes.

Each side of a comparison (the floor, whopfunnel, the peer) lives in its own worker
process, built once and then asked for timed rounds over a pipe, so the orchestrator
can interleave rounds (floor, whopfunnel, peer, floor, ...) and only one side runs at
a time. Separate processes also keep each side's database and memory its own (today's
Store allows one database per process).
"""

from __future__ import annotations

import cProfile
import multiprocessing
import os
import platform
import pstats
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import traceback
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
_T0 = time.perf_counter()


def progress(text: str) -> None:
    """One line on stderr with the elapsed time: the run's progress."""
    print(f"[{time.perf_counter() - _T0:6.1f}s] {text}", file=sys.stderr, flush=True)


# -- worker processes ------------------------------------------------------------------------

def _serve(conn, factory, args, kwargs) -> None:
    try:
        obj = factory(*args, **kwargs)
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ok", os.getpid()))
    while True:
        try:
            method, margs, mkwargs = conn.recv()
        except EOFError:
            return
        if method == "__exit__":
            try:
                getattr(obj, "close", lambda: None)()
            finally:
                conn.send(("ok", None))
            return
        try:
            conn.send(("ok", getattr(obj, method)(*margs, **mkwargs)))
        except BaseException:
            conn.send(("error", traceback.format_exc()))


class WorkerError(RuntimeError):
    pass


class Worker:
    """An object built by `factory(*args, **kwargs)` in a child process; call its methods."""

    def __init__(self, name: str, factory, *args, **kwargs):
        self.name = name
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, factory, args, kwargs), name=name,
                                daemon=True)
        self.proc.start()
        child.close()
        self.pid = self._result()

    def _result(self):
        try:
            status, value = self.conn.recv()
        except EOFError:
            raise WorkerError(f"{self.name}: worker process died (exit code {self.proc.exitcode})") from None
        if status == "error":
            raise WorkerError(f"{self.name}: {value.strip().splitlines()[-1]}\n{value}")
        return value

    def send(self, method: str, *args, **kwargs) -> None:
        self.conn.send((method, args, kwargs))

    def recv(self):
        return self._result()

    def call(self, method: str, *args, **kwargs):
        self.send(method, *args, **kwargs)
        return self.recv()

    def close(self) -> None:
        if self.proc.is_alive():
            try:
                self.call("__exit__")
            except (WorkerError, OSError, EOFError):
                pass
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(timeout=5)


def together(workers: list[Worker], method: str, seconds: float, per=None) -> dict:
    """`method(seconds, start_at=..., **per(k))` on every worker k at once; summed replies
    per second over the wall time from the common start to the last one's end."""
    start_at = time.time() + 0.3
    for k, w in enumerate(workers):
        w.send(method, seconds, start_at=start_at, **(per(k) if per else {}))
    results = [w.recv() for w in workers]
    n = sum(r["n"] for r in results)
    wall = max(r["seconds"] for r in results)
    return {"n": n, "seconds": wall, "rate": n / wall, "cpu": sum(r.get("cpu", 0.0) for r in results)}


# -- statistics -------------------------------------------------------------------------------

class Series:
    """One row's samples (one per round)."""

    def __init__(self, label: str, unit: str = "replies/s", higher_is_better: bool = True):
        self.label, self.unit, self.higher = label, unit, higher_is_better
        self.values: list[float] = []
        self.note = ""

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def lo(self) -> float | None:
        return min(self.values) if self.values else None

    @property
    def hi(self) -> float | None:
        return max(self.values) if self.values else None


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def paired(a: Series, b: Series) -> float | None:
    """The median of the per-round ratios a/b: the rounds are interleaved, so the two sides
    of one round shared its noise. The ratio of the medians when the rounds do not pair up."""
    if a.values and len(a.values) == len(b.values) and all(b.values):
        return statistics.median(x / y for x, y in zip(a.values, b.values))
    return ratio(a.median, b.median)


def paired_range(a: Series, b: Series) -> str:
    """'lo–hi' of the per-round ratios, or '' when the rounds do not pair up."""
    if not (a.values and len(a.values) == len(b.values) and all(b.values)):
        return ""
    ratios = [x / y for x, y in zip(a.values, b.values)]
    return f"{min(ratios):.2f}–{max(ratios):.2f}×"


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if unit == "x":
        return f"{value:.2f}×"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


# -- the machine ----------------------------------------------------------------------------

def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    mem = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                if line.startswith("MemTotal:")), 0)
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": mem / 2**20,
            "platform": platform.platform()}


def git_commit() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    try:
        head = git("rev-parse", "HEAD")
        branch = git("rev-parse", "--abbrev-ref", "HEAD")
        dirty = git("status", "--porcelain", "--", "whopfunnel_plugin", "bench")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head[:12]} ({branch}){' + uncommitted edits' if dirty else ''}"


def dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def versions(pg_admin: str, mysql: dict) -> dict:
    found = {"Python": platform.python_version(), "SQLite": sqlite3.sqlite_version}
    try:
        import psycopg2

        conn = psycopg2.connect(pg_admin, connect_timeout=3)
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            found["PostgreSQL"] = cur.fetchone()[0]
        conn.close()
    except Exception as exc:  # noqa: BLE001 - a missing server is a line in the report
        found["PostgreSQL"] = f"unreachable ({type(exc).__name__})"
    try:
        import pymysql

        conn = pymysql.connect(connect_timeout=3, **mysql)
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            found["MariaDB"] = cur.fetchone()[0]
        conn.close()
    except Exception as exc:  # noqa: BLE001
        found["MariaDB"] = f"unreachable ({type(exc).__name__})"
    for dist in ("peewee", "waitress", "pluggy", "httpx", "psycopg2-binary", "python-telegram-bot",
                 "APScheduler", "whopfunnel"):
        found[dist] = dist_version(dist)
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run([wrk, "-v"], capture_output=True, text=True)
        found["wrk"] = (out.stdout + out.stderr).split("[")[0].replace("wrk", "").strip() or "present"
    else:
        found["wrk"] = "not installed"
    bouncer = shutil.which("pgbouncer")
    if bouncer:
        out = subprocess.run([bouncer, "--version"], capture_output=True, text=True)
        found["PgBouncer"] = (out.stdout.splitlines() or ["present"])[0].replace("PgBouncer", "").strip()
    return found


# -- profiles -------------------------------------------------------------------------------

CATEGORIES = (  # first match wins: (label, test on the function's file and name)
    ("SQLite / driver calls (statements, BEGIN, COMMIT)",
     lambda f, n: f == "~" and any(k in n for k in ("sqlite3", "psycopg2", "pymysql"))),
    ("peewee", lambda f, n: "peewee" in f or "playhouse" in f),
    ("whopfunnel storage/", lambda f, n: "whopfunnel_plugin/storage" in f),
    ("whopfunnel engine, matching, templates",
     lambda f, n: any(k in f for k in ("whopfunnel_plugin/conversation", "whopfunnel_plugin/funnel"))),
    ("whopfunnel service/ (host, delivery, server)", lambda f, n: "whopfunnel_plugin/service" in f),
    ("whopfunnel webhooks and client", lambda f, n: "whopfunnel_plugin/whop" in f),
    ("whopfunnel (other modules)", lambda f, n: "whopfunnel_plugin" in f),
    ("pluggy", lambda f, n: "pluggy" in f),
    ("httpx / httpcore (delivery attempts)", lambda f, n: "httpx" in f or "httpcore" in f),
    ("json", lambda f, n: "/json/" in f or "_json" in n),
    ("python-telegram-bot + APScheduler", lambda f, n: "telegram" in f or "apscheduler" in f),
    ("asyncio", lambda f, n: "asyncio" in f),
    ("other (stdlib: datetime, dataclasses, re, uuid, logging, ...)", lambda f, n: True),
)


def _short(path: str) -> str:
    for marker in ("site-packages/", "whopfunnel_plugin/", "lib/python3"):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return ("whopfunnel_plugin/" + tail) if marker == "whopfunnel_plugin/" else tail
    return os.path.basename(path)


def summarize_profile(prof: cProfile.Profile, calls: int, top: int = 8) -> dict:
    """Share of own time by category, and the top functions by own time."""
    stats = pstats.Stats(prof)
    rows = []
    total = 0.0
    for (file, line, name), (_cc, nc, tt, ct, _callers) in stats.stats.items():
        rows.append((file, line, name, nc, tt, ct))
        total += tt
    by_cat: dict[str, float] = defaultdict(float)
    for file, _line, name, _nc, tt, _ct in rows:
        label = next(lab for lab, test in CATEGORIES if test(file, name))
        by_cat[label] += tt
    rows.sort(key=lambda r: r[4], reverse=True)
    # Where in whopfunnel the time is spent from: its functions by time including callees,
    # minus the entry points that cover nearly everything.
    sites = sorted(((f"{_short(f)}:{line} {name}", nc / calls, ct / total)
                    for f, line, name, nc, _tt, ct in rows
                    if "whopfunnel_plugin" in f and total and ct / total < 0.9), key=lambda s: -s[2])
    return {
        "sites": sites[:8],
        "calls": calls,
        "us_per_call": total / calls * 1e6 if calls else 0.0,
        "categories": sorted(((lab, t / total) for lab, t in by_cat.items() if total), key=lambda x: -x[1]),
        "top": [(f"{_short(f)}:{line} {name}" if f != "~" else name, nc / calls, tt / total)
                for f, line, name, nc, tt, _ct in rows[:top]],
    }


def profiled(fn, calls: int) -> dict:
    prof = cProfile.Profile()
    prof.enable()
    try:
        fn()
    finally:
        prof.disable()
    return summarize_profile(prof, calls)


def rss_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
