"""Soak: many members, several workers, real faults; then nothing may be lost, duplicated,
reordered or wrong (issue 10, SPEC §6).

    python bench/soak.py --members 500 --workers 4 --kills 3 --db-restarts 1
    python bench/soak.py --members 60 --workers 2 --kills 1 --db-restarts 1 --record ''
    python bench/soak.py --engine mysql --members 200 --workers 4 --kills 2   # shared MariaDB

What runs, all of it real processes on loopback:

- a private PostgreSQL cluster the harness starts itself (`initdb` in a temp folder, its
  own port: `tests/tools.py` PrivatePostgres), or with `--engine mysql` a fresh database
  on the machine's MariaDB (127.0.0.1:3306; never restarted, so no database restarts);
- the built-in fake Whop API (waitress, in this process) with three tenants: products
  prod_a/prod_b/prod_c route to experiences exp_a/exp_b/exp_c (companies biz_a/b/c, one
  owner each) on copies of the shipped onboarding, qualification and two-stage funnels
  whose timeout is `--timeout` seconds (`timeouts: {sweep_every: 1s}`);
- `--workers` `whopfunnel serve` processes on one plugin.yaml, with a recorder plugin that
  appends one line per hook call (on_conversation_end, on_timeout, on_owner_notify,
  on_delivery_failed) with its pid;
- `--members` members (soak_traffic.py), each with a random script: valid answers in
  assorted forms, invalid ones, ambiguous ones ("1 or 2"), emails good and bad, hostile
  text (a lone surrogate, 5,000 characters); some stop answering (they time out), some
  leave the product (membership.deactivated), some send two replies at once. Webhooks
  are signed and posted as Whop posts them (the next worker on a 5xx or a refused
  connection); members are interleaved, 15% of the webhooks are posted again later with
  the same webhook id (after whatever came next) and 3% twice at once.
- faults, one after another while the traffic runs: `--kills` SIGKILLs of a worker (the
  fake in slow mode first, and the victim chosen among the workers with a POST /messages
  in flight when there is one: `tools.InFlight` + `socket_owner`), each restarted within
  ~1.5 s; `--db-restarts` restarts of the private cluster (fast or immediate stop, down
  1-3 s, sends in flight); and between them Whop misbehaving for a few seconds: 429 past
  a rate (Retry-After, X-RateLimit-Reset), 5xx, slow answers, answers lost after doing
  the work (a 500, or the connection cut).

Recovery after each fault (printed, bound 30 s, SPEC §6): for a SIGKILL, from the restart
until the worker answers /healthz and takes a webhook, and until every message that was
pending at the kill (in-flight ones and those queued behind them; lanes waiting out a
Whop-requested delay excluded) is sent; with several workers also from the kill (the
others take over). For a database restart, from the moment it is back until every worker
takes a webhook and the backlog pending at the stop is sent.

At the end (the faults cleared, every conversation ended, the outbox and the hook queue
empty, the workers stopped) the checks of soak_check.py run on the database, the fake's
log, the webhook answers and the recorder: lost, duplicated, reordered, wrong state (each
conversation replayed through the pure engine on its stored funnel snapshot), hooks fired
twice. Exit status 0 only when all are 0 and every recovery is within the bound. The
summary is printed and, unless `--record ''`, written to bench/SOAK.md with the command.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (str(HERE), str(ROOT)):  # `python bench/soak.py` from anywhere; importlib from tests
    if path not in sys.path:
        sys.path.insert(0, path)

from _common import machine  # noqa: E402
from soak_check import CHECKS, Collected, Findings, check  # noqa: E402
from soak_traffic import TENANTS, Traffic, load_funnels, make_members  # noqa: E402

from tests.tools import (  # noqa: E402
    InFlight,
    PrivatePostgres,
    Workers,
    connect,
    deliver,
    hook_calls,
    plugin_yaml,
    serve_env,
    socket_owner,
    write_recorder,
)
from whopfunnel_plugin.whop.fake import FakeWhop, serve_in_thread  # noqa: E402

BOUND = 30.0  # SPEC §6: seconds to recover from a worker's death or a database restart
GIVE_UP = 60.0  # seconds a recovery is waited for before it is recorded as missed
SECRET = "ws_soak_secret"
PHASES = ("rate", "5xx", "slow", "lose", "drop")
MYSQL_ADMIN = os.environ.get("WHOPFUNNEL_SOAK_MYSQL", "mysql://root@127.0.0.1:3306/mysql")


@dataclass
class Options:
    members: int = 500
    workers: int = 4
    kills: int = 3
    db_restarts: int = 1
    engine: str = "postgres"
    timeout: int = 20  # funnel timeout, seconds
    arrive_over: float | None = None  # seconds over which members join (default: from the faults)
    slow: float = 1.0  # seconds each Whop request takes while a fault wants sends in flight
    down_for: tuple[float, float] = (1.0, 3.0)  # a database restart's outage, seconds
    whop_faults: bool = True
    seed: int | None = None
    keep: bool = False  # keep the work folder (logs, plugin.yaml) afterwards
    command: str = ""

    def arrival(self) -> float:
        if self.arrive_over is not None:
            return self.arrive_over
        return max(20.0, 30.0 * (self.kills + self.db_restarts) + 10.0)


@dataclass
class Recovery:
    fault: str  # "SIGKILL w1" | "DB restart"
    at: float  # seconds after the traffic started
    detail: str
    tracked: int  # outbox rows pending when the fault hit, waited for
    gap: float | None = None  # kill -> restart, or the database's outage
    ready: float | None = None  # -> the worker(s) answer /healthz and take a webhook
    drained: float | None = None  # -> every tracked row sent
    takeover: float | None = None  # kill -> every tracked row sent (several workers)

    @property
    def seconds(self) -> float | None:
        """The slowest part of the recovery; None when some part never happened."""
        if self.ready is None or self.drained is None:
            return None
        return max(v for v in (self.ready, self.drained, self.takeover) if v is not None)

    @property
    def within(self) -> bool:
        return self.seconds is not None and self.seconds <= BOUND


@dataclass
class Summary:
    options: Options
    seed: int
    findings: Findings
    recoveries: list[Recovery]
    problems: list[str] = field(default_factory=list)  # the harness's own: a worker died, ...
    phases: dict = field(default_factory=dict)
    elapsed: float = 0.0
    folder: str = ""
    collected: Collected | None = None  # what the checks read (tests run them on altered copies)

    @property
    def max_recovery(self) -> float | None:
        values = [r.seconds for r in self.recoveries]
        return None if any(v is None for v in values) else max(values, default=0.0)

    @property
    def passed(self) -> bool:
        return self.findings.ok and all(r.within for r in self.recoveries) and not self.problems

    @property
    def kills_in_flight(self) -> int:
        return sum(r.fault.startswith("SIGKILL") and r.detail.startswith("send in flight")
                   for r in self.recoveries)

    def counts(self) -> dict[str, int]:
        return {name: self.findings.count(name) for name in CHECKS}

    def text(self, evidence: int = 10) -> str:
        o, info = self.options, self.findings.info
        lines = [f"whopfunnel soak: {o.members} members, {len(TENANTS)} tenants, {o.workers} workers, "
                 f"{o.engine}{' (private cluster)' if o.engine == 'postgres' else ' (shared server)'}, "
                 f"seed {self.seed}, funnel timeout {o.timeout}s, elapsed {self.elapsed:.0f}s",
                 f"faults: {o.kills} SIGKILL restarts ({self.kills_in_flight} with a send in flight), "
                 f"{o.db_restarts} database restarts, Whop phases "
                 + (", ".join(f"{k} x{v}" for k, v in sorted(self.phases.items())) or "none")]
        lines.append("webhooks: " + _join(info, "webhooks "))
        lines.append("conversations: " + _join(info, "ended "))
        lines.append("replies: " + _join(info, "replies ") + "; escalation steps: "
                     + _join(info, "escalation step "))
        lines.append("hook calls: " + _join(info, "hook ") + "; fired again after a SIGKILL "
                     f"(allowed): {info['hook calls fired again after a SIGKILL (allowed)']}")
        lines.append(f"outbox: {info['outbox rows']} rows, {info['visible messages']} visible at Whop, "
                     f"{info['sends repeated with the same key']} sends repeated with the same key; "
                     "Whop answers: " + _join(info, "Whop answers: "))
        lines.append("")
        lines.append("recovery after each fault (seconds; bound 30):")
        lines.append(f"  {'fault':<12} {'at':>6}  {'gap':>5} {'ready':>6} {'drained':>8} "
                     f"{'takeover':>9} {'recovery':>9}  detail")
        for r in self.recoveries:
            lines.append(f"  {r.fault:<12} {r.at:>5.0f}s  {_s(r.gap):>5} {_s(r.ready):>6} "
                         f"{_s(r.drained):>8} {_s(r.takeover):>9} {_s(r.seconds):>9}  {r.detail}")
        top = self.max_recovery
        lines.append(f"  max recovery {_s(top)} s (bound {BOUND:.0f} s): "
                     f"{'ok' if top is not None and top <= BOUND else 'EXCEEDED'}")
        lines.append("")
        for name, n in self.counts().items():
            lines.append(f"{name} {n}")
            lines += [f"    {e}" for e in self.findings.problems[name][:evidence]]
        for p in self.problems:
            lines.append(f"harness: {p}")
        lines.append(f"result: {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _join(info, prefix: str) -> str:
    items = [(k[len(prefix):], v) for k, v in sorted(info.items()) if k.startswith(prefix) and v]
    return ", ".join(f"{k} {v}" for k, v in items) or "none"


class Soak:
    def __init__(self, options: Options, log=print):
        self.o = options
        self.say = log
        self.seed = options.seed if options.seed is not None else random.SystemRandom().randrange(10**6)
        self.rng = random.Random(self.seed)
        self.recoveries: list[Recovery] = []
        self.kills: list[tuple[int, float]] = []
        self.problems: list[str] = []
        self.phases: dict[str, int] = {}
        self.cluster: PrivatePostgres | None = None
        self._drop = None
        self._t0 = 0.0
        self._passed = False  # the work folder is kept for a run that failed
        self._conn = None  # the harness's own database connection (see _query)

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> Summary:
        started = time.monotonic()
        self.folder = Path(tempfile.mkdtemp(prefix="wf-soak-"))
        stop_fake = None
        self.workers = None
        try:
            self.db_url = self._database()
            self.fake = FakeWhop("soak_api_key", owners={t.company: t.owner for t in TENANTS})
            self.inflight = InFlight(self.fake)
            fake_url, stop_fake = serve_in_thread(self.inflight, threads=8)
            self.fake.url = fake_url
            self.workers = self._workers(fake_url)
            funnels = load_funnels(self.folder / "funnels")
            members = make_members(self.o.members, funnels, self.rng, self.o.arrival())
            self.say(f"soak: seed {self.seed}, {len(members)} members over {self.o.arrival():.0f}s, "
                     f"{self.o.workers} workers on {self.o.engine}; work folder {self.folder}")
            urls = [self.workers.url(i) for i in range(self.o.workers)]
            http = httpx.Client(timeout=10)  # pooled connections: posting is most of our CPU
            self.traffic = Traffic(self.fake, members, lambda: urls,
                                   lambda us, env: deliver(us, env, SECRET, give_up_after=120,
                                                           client=http),
                                   rng=random.Random(self.rng.random()), threads=32)
            self._t0 = time.monotonic()
            self.traffic.start()
            chaos = threading.Thread(target=self._chaos, name="soak-chaos", daemon=True)
            chaos.start()
            chaos.join()
            if not self.traffic.wait(timeout=300):
                self.problems.append("the traffic did not finish within 300 s of the last fault")
            self.fake.clear_faults()
            settled = self._settle()
            self._check_alive()
            self.workers.stop_all()
            collected = self._collect()
            self._dump(collected)
            findings = check(collected)
            if not settled:
                self.problems.append("the system did not settle (see lost)")
            tracebacks = self.workers.logs().count("Traceback")
            findings.info["worker log tracebacks"] = tracebacks
            summary = Summary(self.o, self.seed, findings, self.recoveries, self.problems,
                              dict(self.phases), time.monotonic() - started, str(self.folder),
                              collected)
            self._passed = summary.passed
            return summary
        finally:
            if self.workers is not None:
                self.workers.stop_all()
            if getattr(self, "traffic", None) is not None:
                self.traffic.close()
            if stop_fake is not None:
                stop_fake()
            if self._conn is not None:
                self._conn.close()
            if self.cluster is not None:
                self.cluster.close()
            if self._drop is not None:
                self._drop()
            if not self.o.keep and self._passed:
                shutil.rmtree(self.folder, ignore_errors=True)

    def _database(self) -> str:
        if self.o.engine == "postgres":
            self.cluster = PrivatePostgres()
            self.cluster.start()
            return self.cluster.create_database("wf_soak")
        if self.o.engine != "mysql":
            raise SystemExit(f"--engine must be postgres or mysql, not {self.o.engine}")
        if self.o.db_restarts:
            self.say("soak: no database restarts on the shared MariaDB (never restarted)")
            self.o.db_restarts = 0
        import pymysql

        name = f"wf_soak_{uuid.uuid4().hex[:10]}"
        admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="",
                                autocommit=True, connect_timeout=5)
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")

        def drop():
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            admin.close()

        self._drop = drop
        return MYSQL_ADMIN.rsplit("/", 1)[0] + "/" + name

    def _workers(self, fake_url: str) -> Workers:
        routes = "".join(f"  - {{product: {t.product}, experience: {t.experience}, funnel: {t.funnel}}}\n"
                         for t in TENANTS)
        recorder = write_recorder(self.folder)
        plugin_yaml(self.folder, self.db_url, fake_url, funnels=(), routes=routes,
                    extra=f"timeouts: {{conversation: {self.o.timeout}s, sweep_every: 1s}}\n"
                          f"plugins: [{recorder}]\n")
        from tests.conftest import FUNNELS

        for t in TENANTS:  # copies of the shipped funnels, with a short timeout
            text = (FUNNELS / t.file).read_text()
            lines = [f"timeout: {self.o.timeout}s" if line.startswith("timeout:") else line
                     for line in text.splitlines()]
            (self.folder / "funnels" / t.file).write_text("\n".join(lines) + "\n")
        env = serve_env(self.fake, SECRET, WF_HOOK_LOG=str(self.folder / "hooks.log"),
                        PYTHONPATH=os.pathsep.join([str(self.folder), os.environ.get("PYTHONPATH", "")]))
        workers = Workers(self.folder, env, self.o.workers)
        workers.run("db", "upgrade")
        workers.start_all()
        return workers

    # -- faults -----------------------------------------------------------------------------

    def _chaos(self) -> None:
        plan = ["kill"] * self.o.kills + ["db"] * self.o.db_restarts
        self.rng.shuffle(plan)
        time.sleep(2.0)  # let a backlog form
        for n, action in enumerate(plan):
            if self.o.whop_faults:
                self._whop_phase()
            if action == "kill":
                self._kill()
            else:
                self._db_restart(n)
        if self.o.whop_faults:
            while not self.traffic.done() and time.monotonic() - self._t0 < self.o.arrival():
                self._whop_phase()
        self.fake.clear_faults()

    def _whop_phase(self) -> None:
        kind = self.rng.choice(PHASES)
        self.phases[kind] = self.phases.get(kind, 0) + 1
        fake, length = self.fake, self.rng.uniform(2.0, 4.0)
        if kind == "rate":
            fake.limit_rate(self.rng.randint(10, 20), 1.0)
        elif kind == "5xx":
            fake.fail_next(self.rng.randint(4, 12), self.rng.choice([500, 502, 503]))
        elif kind == "slow":
            fake.slow(self.rng.uniform(0.3, 0.8))
        elif kind == "lose":
            fake.lose_next(self.rng.randint(2, 5), status=self.rng.choice([500, 502]))
        else:
            fake.lose_next(self.rng.randint(1, 3), drop=True)
        time.sleep(length)
        fake.clear_faults()
        time.sleep(self.rng.uniform(0.5, 1.5))

    def _now(self) -> float:
        return time.monotonic() - self._t0

    def _kill(self) -> None:
        self.fake.clear_faults()
        self.fake.slow(self.o.slow)  # sends take a while: a kill lands on one in flight
        start, soonest = time.monotonic(), self.rng.uniform(0.3, 2.0)
        victim = key = None
        while time.monotonic() - start < 6.0:
            if time.monotonic() - start >= soonest:
                victim, key = self._sending()
                if victim is not None:
                    break
            time.sleep(0.05)
        if victim is None:
            victim = self.rng.randrange(self.o.workers)
        tracked, backlog = self._pending_work(key, claimed_only=True)
        pid = self.workers.procs[victim].pid
        self.workers.kill(victim)
        killed = time.monotonic()
        self.kills.append((pid, time.time()))
        self.fake.slow(0)
        at = self._now()
        time.sleep(self.rng.uniform(0.2, 1.5))
        self.workers.start(victim, wait=False)
        restarted = time.monotonic()
        detail = (f"send in flight ({key[:12]}...)" if key else "no send in flight") + \
            f", {len(tracked)} rows in its lanes, backlog {backlog}"
        r = Recovery(f"SIGKILL w{victim}", at, detail, len(tracked), gap=restarted - killed)
        ready, drained = self._recover(restarted, [victim], tracked)
        r.ready, r.drained = ready, drained
        if self.o.workers > 1 and drained is not None:
            r.takeover = drained + (restarted - killed)
        self.recoveries.append(r)
        self.say(f"soak: {r.fault} at {at:.0f}s: {detail}; ready {_s(ready)}s, drained {_s(drained)}s")

    def _sending(self) -> tuple[int | None, str | None]:
        """A worker with a POST /messages in flight now, and that message's key."""
        pids = self.workers.pids()
        for request in self.inflight.now("/messages"):
            if request["method"] != "POST":
                continue
            pid = socket_owner(request["port"], pids)
            if pid is not None:
                return pids[pid], request["key"]
        return None, None

    def _db_restart(self, n: int) -> None:
        self.fake.clear_faults()
        self.fake.slow(self.o.slow)
        time.sleep(self.rng.uniform(0.5, 1.5))
        in_flight = bool(self.inflight.now("/messages"))
        tracked, backlog = self._pending_work()
        mode = "immediate" if n % 2 else "fast"
        at = self._now()
        self.cluster.stop(mode)
        down = time.monotonic()
        time.sleep(self.rng.uniform(*self.o.down_for))
        self.fake.slow(0)
        self.cluster.start()
        up = time.monotonic()
        detail = (f"{mode} stop, {'sends in flight, ' if in_flight else ''}"
                  f"backlog {backlog} rows, {len(tracked)} due")
        r = Recovery("DB restart", at, detail, len(tracked), gap=up - down)
        r.ready, r.drained = self._recover(up, range(self.o.workers), tracked)
        self.recoveries.append(r)
        self.say(f"soak: DB restart at {at:.0f}s: {detail}; ready {_s(r.ready)}s, "
                 f"drained {_s(r.drained)}s")

    def _recover(self, since: float, workers, tracked: list[int]) -> tuple[float | None, float | None]:
        """Seconds from `since` until `workers` answer /healthz and take a webhook, and
        until every row of `tracked` is sent; None for what did not happen in GIVE_UP."""
        waiting, ready, drained = set(workers), None, None
        while time.monotonic() - since < GIVE_UP and (ready is None or drained is None):
            for i in list(waiting):
                if self.workers.healthy(i) and self.workers.accepts_webhooks(i, SECRET):
                    waiting.discard(i)
            if ready is None and not waiting:
                ready = time.monotonic() - since
            if drained is None and self._all_sent(tracked):
                drained = time.monotonic() - since
            time.sleep(0.2)
        for i in range(self.o.workers):
            if not self.workers.alive(i):
                self.problems.append(f"worker {i} died on its own (see worker-{i}.log)")
        return ready, drained

    def _query(self, sql: str, params=()) -> list[dict]:
        """A query on the harness's own connection, made again after the database restarted."""
        for attempt in (1, 2):
            try:
                if self._conn is None:
                    self._conn = connect(self.db_url)
                cur = self._conn.cursor()
                cur.execute(sql, params)
                names = [d[0] for d in cur.description]
                return [dict(zip(names, row)) for row in cur.fetchall()]
            except Exception:
                if self._conn is not None:
                    try:
                        self._conn.close()
                    except Exception:  # noqa: BLE001 - it is gone anyway
                        pass
                    self._conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _pending_work(self, key: str | None = None, *, claimed_only: bool = False):
        """(ids, backlog): the outbox rows a fault must not hold up for long, and how many
        rows are open in all. With `claimed_only` (a kill), every open row of each lane
        whose head is claimed (a worker holds one claim at a time: the victim's is among
        them) or is the message in flight with `key`; otherwise (a database restart) also
        the lanes whose head is due. Lanes waiting out a delay Whop asked for are left out."""
        rows = self._query("SELECT id, conversation_id, recipient, claimed_by, next_attempt_at, "
                                  "idempotency_key FROM messages WHERE direction = 'out' AND status "
                                  "IN ('pending', 'failed') ORDER BY id")
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        lanes: dict[tuple, list[dict]] = {}
        for row in rows:
            lanes.setdefault((row["conversation_id"], row["recipient"]), []).append(row)

        def held(lane) -> bool:
            head = lane[0]
            if head["claimed_by"] is not None or (key and any(r["idempotency_key"] == key for r in lane)):
                return True
            return not claimed_only and head["next_attempt_at"] <= now

        return [r["id"] for lane in lanes.values() if held(lane) for r in lane], len(rows)

    def _all_sent(self, ids: list[int]) -> bool:
        if not ids:
            return True
        try:
            marks = ", ".join(["%s"] * len(ids))
            rows = self._query(f"SELECT COUNT(*) AS n FROM messages WHERE id IN ({marks}) "
                                      "AND status <> 'sent'", ids)
        except Exception:  # noqa: BLE001 - the database is still coming back
            return False
        return rows[0]["n"] == 0

    def _check_alive(self) -> None:
        for i in range(self.o.workers):
            if not self.workers.alive(i):
                self.problems.append(f"worker {i} is not running at the end (see worker-{i}.log)")

    def _settle(self) -> bool:
        """Wait until every conversation ended, the outbox is empty and every hook call fired."""
        deadline = time.monotonic() + self.o.timeout + 120
        while time.monotonic() < deadline:
            try:
                row = self._query("SELECT (SELECT COUNT(*) FROM conversations WHERE status = "
                                         "'active') AS active, (SELECT COUNT(*) FROM messages WHERE "
                                         "direction = 'out' AND status <> 'sent') AS outbox, "
                                         "(SELECT COUNT(*) FROM pending_effects) AS effects")[0]
                if not any(row.values()):
                    return True
            except Exception:  # noqa: BLE001 - keep waiting
                pass
            time.sleep(0.5)
        return False

    def _collect(self) -> Collected:
        q = self._query
        funnels = {r["id"]: json.loads(r["definition"]) for r in q("SELECT id, definition FROM funnels")}
        return Collected(
            conversations=q("SELECT * FROM conversations ORDER BY id"),
            messages=q("SELECT id, conversation_id, direction, whop_message_id, text, status, recipient, "
                       "title, attempts, idempotency_key, last_error FROM messages ORDER BY id"),
            interactions=q("SELECT * FROM interactions ORDER BY id"),
            visits=q("SELECT id, conversation_id, block FROM visits ORDER BY id"),
            funnels=funnels,
            pending_effects=q("SELECT COUNT(*) AS n FROM pending_effects")[0]["n"],
            sent=self.fake.sent_messages(), notifications=self.fake.notifications,
            requests=self.fake.seen_requests(), deliveries=list(self.traffic.deliveries),
            hook_calls=hook_calls(self.folder / "hooks.log"), kills=list(self.kills),
            timeout=self.o.timeout)


    def _dump(self, c: Collected) -> None:
        """What the checks read, as JSON lines in the work folder: the evidence of a failure."""
        def rows(name, items):
            with open(self.folder / f"{name}.jsonl", "w") as out:
                for item in items:
                    out.write(json.dumps(item, default=str) + "\n")

        rows("deliveries", ({"webhook": d.envelope["id"], "kind": d.kind, "member": d.member,
                             "message": d.message_id, "text": (d.text or "")[:80],
                             "copy": d.copy_of is not None, "sent_at": d.sent_at,
                             "acked_at": d.acked_at, "status_code": d.status_code,
                             "status": d.status, "tries": d.tries, "error": d.error}
                            for d in c.deliveries))
        rows("whop-requests", (r.as_dict() for r in c.requests))
        rows("whop-sent", c.sent)
        rows("recoveries", (vars(r) for r in self.recoveries))


def run_soak(options: Options, log=print) -> Summary:
    return Soak(options, log).run()


def record(summary: Summary, path: Path) -> None:
    path.write_text(
        "# Soak results\n\nThe last recorded run of `bench/soak.py` (see its docstring and README "
        "\"Soak\").\n\n"
        f"Command:\n\n    {summary.options.command}\n\n"
        f"Machine: {machine()}; recorded {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.\n\n"
        "Summary, as printed:\n\n" + "\n".join(f"    {line}" for line in summary.text().splitlines())
        + "\n\nWhat each line checks: README \"Soak\" and the docstring of `bench/soak_check.py`. "
        "The product bugs found while building the soak are fixed, each with its test in "
        "`tests/service/test_faults.py` (`test_a_hook_call_running_during_a_database_outage_fires_once`, "
        "`test_a_conversations_owner_dms_keep_their_order_across_workers`, "
        "`test_the_survivor_takes_over_within_30s_while_whop_is_slow_and_a_backlog_waits`).\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kills", type=int, default=3, help="SIGKILL restarts of a worker")
    parser.add_argument("--db-restarts", type=int, default=1, help="restarts of the private cluster")
    parser.add_argument("--engine", choices=("postgres", "mysql"), default="postgres")
    parser.add_argument("--timeout", type=int, default=20, help="funnel timeout, seconds")
    parser.add_argument("--arrive-over", type=float, default=None,
                        help="seconds over which members join (default: enough for the faults)")
    parser.add_argument("--no-whop-faults", action="store_true",
                        help="no 429/5xx/slow/lost-answer phases between the kills and restarts")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (worker logs)")
    parser.add_argument("--record", default=str(HERE / "SOAK.md"),
                        help="write the summary and the command here ('' to skip)")
    args = parser.parse_args(argv)
    logging.getLogger("waitress").setLevel(logging.ERROR)  # the fake's cut connections, on purpose
    shown = " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
    options = Options(members=args.members, workers=args.workers, kills=args.kills,
                      db_restarts=args.db_restarts, engine=args.engine, timeout=args.timeout,
                      arrive_over=args.arrive_over, whop_faults=not args.no_whop_faults,
                      seed=args.seed, keep=args.keep,
                      command=f"python bench/soak.py {shown}".strip())
    summary = run_soak(options)
    print()
    print(summary.text())
    if not summary.passed or options.keep:
        print(f"work folder (logs, plugin.yaml, hooks.log): {summary.folder}")
    if args.record:
        record(summary, Path(args.record))
    return 0 if summary.passed else 1


if __name__ == "__main__":
    sys.exit(main())
