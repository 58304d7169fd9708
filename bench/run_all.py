"""The benchmark suite of issue 14: every figure of its table, measured side by side in
one run, written to bench/BENCHMARKS.md.

    python bench/run_all.py                  # the full run (under 10 minutes on 2 cores)
    python bench/run_all.py --quick          # smaller and shorter (1-2 minutes), for developing
    python bench/run_all.py --only engine,sweep --out /tmp/b.md

Needs: `pip install -e '.[test]' -r bench/requirements.txt` (python-telegram-bot, for the
peer), `wrk` for the webhook figure (`apt-get install -y wrk`), PostgreSQL on
127.0.0.1:5432 (user postgres) and MariaDB on 127.0.0.1:3306 (root) for theirs; a figure
whose tool or server is missing is reported as not measured and the rest still run.
PgBouncer (`apt-get install -y pgbouncer`) adds rows for docs/scaling.md.

Progress goes to stderr. Each side of a comparison runs in its own worker process, in
interleaved rounds (floor, whopfunnel, peer, floor, ...), so noise hits all sides alike.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _fig_local
import _fig_server
from _harness import BENCH, progress
from _report import previous, render
from _run import Run

FIGURES = {  # name -> figure function, in the order they run
    "replies": _fig_local.replies,
    "concurrency": _fig_local.concurrency,
    "postgres": _fig_server.postgres,
    "webhook": _fig_server.webhook,
    "sweep": _fig_server.sweep,
    "engine": _fig_local.engine,
    "memory": _fig_local.memory,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer and shorter rounds")
    parser.add_argument("--only", default="", help=f"comma-separated figures: {', '.join(FIGURES)}")
    parser.add_argument("--out", default=None,
                        help="report path (default bench/BENCHMARKS.md; with --only: print it instead)")
    parser.add_argument("--tmpdir", default=None, help="where the on-disk SQLite files go (default: $TMPDIR)")
    args = parser.parse_args(argv)
    chosen = [f.strip() for f in args.only.split(",") if f.strip()] or list(FIGURES)
    unknown = [f for f in chosen if f not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    out = Path(args.out) if args.out else (None if args.only else BENCH / "BENCHMARKS.md")
    run = Run(args)
    where = f"{run.disk_root}" + (f" and {run.shm_root}" if run.shm_root else "")
    progress(f"{'quick' if run.quick else 'full'} run of {', '.join(chosen)}; load average "
             f"{run.load_start[0]:.2f}; files in {where}")
    targets, sections = [], []
    try:
        for name in chosen:
            progress(f"--- {name}")
            t, s = FIGURES[name](run)
            targets += t
            sections.append(s)
            for target in t:
                verdict = {True: "met", False: "MISSED", None: "-"}[target.met]
                progress(f"{name}: {target.figure}: {target.measured} [{verdict}]")
    finally:
        run.finish()
        run.cleanup()
    text = render(run, targets, sections, previous(out) if out else "")
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        progress(f"wrote {out} ({run.duration:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
