"""One run of the suite: its sizes, its folders, the template database every SQLite side
copies, and the helpers the figures share."""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from _embedded import Clock, Embedded, cli, delivery_choice, write_config
from _harness import Series, Worker, fmt, git_commit, machine, paired, paired_range, progress, versions
from _pgserver import MYSQL, PG_ADMIN
from _report import Target
from _workload import TENANTS

PLANS = {
    "full": {"members": 10_000, "rounds": 5, "round_seconds": 1.5, "warmup": 0.5, "profile_replies": 600,
             "conc_rounds": 3, "conc_seconds": 1.5, "pg_members": 10_000, "pg_rounds": 3, "pg_seconds": 2.5,
             "rt_replies": 400, "wh_rounds": 3, "wh_seconds": 5, "drain_members": 2_000,
             "sweep_stored": 1_000_000, "sweep_expired": 10_000, "sweep_rounds": 3, "sweep_round_limit": 8,
             "noop_sweeps": 30, "engine_rounds": 5, "engine_seconds": 1.0, "soak_replies": 250_000,
             "soak_seconds": 110, "soak_every": 25_000},
    "quick": {"members": 2_000, "rounds": 3, "round_seconds": 0.7, "warmup": 0.3, "profile_replies": 400,
              "conc_rounds": 2, "conc_seconds": 0.6, "pg_members": 1_000, "pg_rounds": 2, "pg_seconds": 1.0,
              "rt_replies": 200, "wh_rounds": 2, "wh_seconds": 2, "drain_members": 500,
              "sweep_stored": 100_000, "sweep_expired": 1_000, "sweep_rounds": 2, "sweep_round_limit": 8,
              "noop_sweeps": 20, "engine_rounds": 3, "engine_seconds": 0.5, "soak_replies": 25_000,
              "soak_seconds": 20, "soak_every": 5_000},
}
MODES = ("inline", "dispatcher")
MODE_NAMES = {"inline": "delivery before return", "dispatcher": "delivery left to a dispatcher"}


def delivery_api() -> str:
    """How this package lets an embedder choose the delivery mode, as the report states it."""
    import inspect

    from whopfunnel_plugin import make_plugin_manager

    _, how = delivery_choice(make_plugin_manager, "dispatcher")
    if how:
        return f"documented keyword found: `{how}` (and its 'inline' counterpart)"
    params = ", ".join(p for p in inspect.signature(make_plugin_manager).parameters if p != "config")
    return ("no documented keyword in `make_plugin_manager(config, " + params + ")`: *delivery before "
            "return* is today's default; *delivery left to a dispatcher* uses the stand-in "
            "`pm.runtime.inline_delivery = False` (what `whopfunnel serve` sets)")


class Run:
    def __init__(self, args):
        self.quick = args.quick
        self.plan = PLANS["quick" if args.quick else "full"]
        self.members = self.plan["members"]
        self.tenants = TENANTS
        self.rounds = self.plan["rounds"]
        self.round_seconds = self.plan["round_seconds"]
        self.command = "python bench/run_all.py" + "".join(f" {a}" for a in sys.argv[1:])
        self.started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
        self.t0 = time.perf_counter()
        self.load_start = os.getloadavg()
        self.load_end = self.load_start
        self.machine = machine()
        self.commit = git_commit()
        self.versions = versions(PG_ADMIN, MYSQL)
        self.disk_root = Path(tempfile.mkdtemp(prefix="wf_bench_", dir=args.tmpdir))
        shm = Path("/dev/shm")
        self.shm_root = (Path(tempfile.mkdtemp(prefix="wf_bench_", dir=shm))
                         if shm.is_dir() and os.access(shm, os.W_OK) else None)
        self.config = write_config(self.disk_root / "config")
        self.template: Path | None = None
        self.delivery_api = delivery_api()
        self.notes: list[str] = []

    @property
    def duration(self) -> float:
        return time.perf_counter() - self.t0

    @property
    def noisy(self) -> bool:
        return self.load_start[0] >= 0.5 * (self.machine["cores"] or 1)

    def finish(self) -> None:
        self.load_end = os.getloadavg()

    def cleanup(self) -> None:
        for root in (self.disk_root, self.shm_root):
            if root is not None:
                shutil.rmtree(root, ignore_errors=True)

    # -- the template: members joined through the public API, once -------------------------

    def build_template(self) -> None:
        """`whopfunnel db upgrade`, then every member joins through `on_member_join`, in parallel
        workers, on a clock stopped at `template_time`, with delivery left to a dispatcher: each
        welcome waits in the outbox, due at `template_time`."""
        if self.template is not None:
            return
        path = self.disk_root / "template.db"
        url = f"sqlite:///{path}"
        cli(self.config, url, "db", "upgrade")
        n = max(1, min(self.machine["cores"] or 1, 4))
        progress(f"template: {self.members:,} members join through on_member_join ({n} workers)")
        self.template_time = datetime.now(timezone.utc)
        workers = [Worker(f"join-{k}", Embedded, self.config, url, mode="dispatcher",
                          clock=Clock(self.template_time)) for k in range(n)]
        try:
            for k, w in enumerate(workers):
                w.send("join", k, len(range(k, self.members, n)), n)
            took = max(w.recv()["seconds"] for w in workers)
        finally:
            for w in workers:
                w.close()
        self.join_rate = self.members / took
        progress(f"template: joined in {took:.1f} s ({self.join_rate:,.0f} joins/s)")
        self.template = path

    def reply_clock(self) -> Clock:
        """Figure 1's clock: stopped 1 s before the joins' clock, so no welcome is due yet and,
        with delivery before return, each reply pays the delivery check but no send attempt."""
        self.build_template()
        return Clock(self.template_time - timedelta(seconds=1))

    def copy_template(self, folder: Path, name: str) -> str:
        """A consistent copy (SQLite's backup API, WAL included); returns its URL."""
        self.build_template()
        target = folder / name
        src, dst = sqlite3.connect(self.template), sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        return f"sqlite:///{target}"


def ratio_target(key: str, figure: str, side: Series, base: Series, minimum: float, *,
                 mode: str = "", vs: str = "floor", peer: Series | None = None) -> Target:
    """A 'side / base >= minimum' target."""
    r = paired(side, base)
    spread = paired_range(side, base)
    measured = (f"{fmt(side.median, side.unit)} ({fmt(side.lo)}–{fmt(side.hi)}) vs "
                f"{fmt(base.median, base.unit)} ({fmt(base.lo)}–{fmt(base.hi)})"
                + (f"; per round {spread}" if spread else ""))
    met = None if r is None else r >= minimum
    gap = ""
    if met is False:
        gap = (f"{fmt(r, 'x')} of the {vs} against ≥ {minimum:g}×: needs {minimum / r:.1f}× the rate "
               f"({fmt(minimum * base.median, side.unit)} instead of {fmt(side.median, side.unit)}).")
    peer_ratio = paired(side, peer) if peer is not None else (r if vs == "peer" else None)
    return Target(key, figure, measured, f"≥ {minimum:g}×", met, floor_ratio=r if vs == "floor" else None,
                  peer_ratio=peer_ratio, gap=gap, mode=mode)


def below_target(key: str, figure: str, measured: str, value: float | None, limit: float, unit: str,
                 **kw) -> Target:
    """A 'value < limit' (or <=) target."""
    met = None if value is None else value <= limit
    gap = ""
    if met is False:
        gap = f"{fmt(value, unit)} against ≤ {fmt(limit, unit)}: {value / limit:.1f}× over."
    return Target(key, figure, measured, kw.pop("target", f"≤ {fmt(limit, unit)}"), met, gap=gap, **kw)


def failed(key: str, figure: str, target: str, error: str) -> Target:
    return Target(key, figure, f"not measured: {error}", target, None)


INSTALL = "pip install -r bench/requirements.txt"
HINTS = {"No module named 'telegram'": f"python-telegram-bot is missing: {INSTALL}",
         "No module named 'apscheduler'": f"APScheduler is missing: {INSTALL}"}


def short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = (text[0] if text else type(exc).__name__)[:300]
    hint = next((h for k, h in HINTS.items() if k in str(exc)), "")
    return f"{first} ({hint})" if hint else first
