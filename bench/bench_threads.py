"""Threads on one SQLite file: where figure 2's fall with more threads comes from.

    python bench/bench_threads.py [--seconds 2] [--rounds 2]

One process, 10,000 members, durable replies through the public API with delivery left
to a dispatcher (as figure 2 of `run_all.py`), from 1, 4 and 8 threads:

- **whopfunnel**: the default, every write of the process through group commit;
- **whopfunnel, no group commit**: `store.group = None`, so each thread commits on its own
  connection and waits in SQLite's busy handler (diagnosis only; not a setting);
- **floor**: raw `sqlite3` doing the floor's writes (`bench/_floor.py`), one connection per
  thread, `BEGIN IMMEDIATE` with a busy timeout.

Rounds are interleaved. Printed: replies/s, the ratio to one thread of the same side,
cores busy, and writes per commit for group commit. Nothing is written to a file.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from _embedded import Embedded, cli, write_config
from _floor import Floor

MEMBERS = 10_000
THREADS = (1, 4, 8)


def _fresh(base: Path, target: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(base, target)
    return target


class FloorThreads:
    """The floor's reply loop from n threads, one connection each, on one file."""

    def __init__(self, path: Path):
        Floor(str(path), MEMBERS).close()
        self.path = path

    def run(self, seconds: float, threads: int) -> dict:
        floors = [Floor.attach(str(self.path), MEMBERS, seed=1000 + k) for k in range(threads)]
        out: list[dict] = []
        pool = [threading.Thread(target=lambda f=f: out.append(f.run(seconds))) for f in floors]
        cpu, start = time.process_time(), time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        took = time.perf_counter() - start
        for f in floors:
            f.close()
        return {"rate": sum(o["n"] for o in out) / took, "cores": (time.process_time() - cpu) / took}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="wf_threads_"))
    config = write_config(folder / "cfg")
    base = folder / "base.db"
    cli(config, f"sqlite:///{base}", "db", "upgrade")
    members = Embedded(config, f"sqlite:///{base}", mode="dispatcher")
    members.join(0, MEMBERS)
    members.close()

    sides = {}
    for name, group in (("whopfunnel", True), ("whopfunnel, no group commit", False)):
        e = Embedded(config, f"sqlite:///{_fresh(base, folder / f'{len(sides)}.db')}",
                     mode="dispatcher", members=MEMBERS)
        if not group:
            e.pm.runtime.store.group = None
        e.run(1.0)  # warm up
        sides[name] = e
    floor = FloorThreads(folder / "floor.db")
    results: dict[tuple[str, int], list[dict]] = {}
    for r in range(args.rounds):
        for n in THREADS:
            for name, e in sides.items():
                group = e.pm.runtime.store.group
                before = (group.commits, group.writes) if group else None
                res = e.run(args.seconds, threads=n)
                res["cores"] = res["cpu"] / res["seconds"]
                if group:
                    res["per_commit"] = (group.writes - before[1]) / max(1, group.commits - before[0])
                results.setdefault((name, n), []).append(res)
            results.setdefault(("floor", n), []).append(floor.run(args.seconds, n))
            print(f"round {r + 1}/{args.rounds}, {n} threads done", flush=True)
    for e in sides.values():
        e.close()
    shutil.rmtree(folder, ignore_errors=True)

    print("\n| side | threads | replies/s | vs 1 thread | cores busy | writes per commit |")
    print("|---|---|---|---|---|---|")
    for name in (*sides, "floor"):
        one = statistics.median(x["rate"] for x in results[(name, 1)])
        for n in THREADS:
            rows = results[(name, n)]
            rate = statistics.median(x["rate"] for x in rows)
            cores = statistics.median(x["cores"] for x in rows)
            per = (f"{statistics.median(x['per_commit'] for x in rows):.2f}"
                   if "per_commit" in rows[0] else "–")
            print(f"| {name} | {n} | {rate:,.0f} | {rate / one:.2f}× | {cores:.2f} | {per} |")


if __name__ == "__main__":
    main()
