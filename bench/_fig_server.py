"""Figures 3, 4 and 5: PostgreSQL at the wire and with 4 workers (plus PgBouncer and
MariaDB for the record), `POST /webhooks/whop` under wrk, and the sweep."""

from __future__ import annotations

import os
import shutil
import statistics
from datetime import datetime, timedelta, timezone

from _embedded import SECRET, Clock, Embedded, cli, environ, write_config
from _fig_local import _close
from _harness import Series, Worker, fmt, paired, progress, together
from _pgserver import MariaDatabase, PgBouncer, PgDatabase
from _report import Section, Target, profile_lines
from _run import below_target, failed, short_error
from _sweep import SweepBench
from _tinywhop import Served
from _webhook import (
    LUA,
    ServeProcess,
    WebhookInProcess,
    serve_env,
    settle_outbox,
    signed_bodies,
    wait_drained,
    write_bodies,
    wrk,
    wrk_missing,
)
from _wire import WireCounter, round_trips


def _count_trips(config, url_via, proxy, members, replies, mode, protocol="postgres") -> tuple[float, dict]:
    w = Worker(f"wire-{mode}", Embedded, config, url_via, mode=mode, members=members)
    try:
        w.call("run", replies=30)
        proxy.call("reset")
        n = w.call("run", replies=replies)["n"]
        counts = proxy.call("counts")
    finally:
        w.close()
    per = {k: round(v / n, 2) for k, v in sorted(counts.items())}
    return round_trips(counts, protocol) / n, per


def postgres(run):
    p = run.plan
    members = p["pg_members"]
    sec = Section("postgres", "3. PostgreSQL: round trips per reply at the wire, and 4 workers vs 1", [
        f"- A scratch database (created and dropped by the run), `whopfunnel db upgrade`, {members:,} "
        "members joined through `on_member_join` by 4 worker processes.",
        "- **Round trips**: a plugin manager connected through `bench/_wire.py`, an asyncio TCP proxy "
        "that parses the client's protocol messages; simple Query ('Q') and Sync ('S') each end a round "
        f"trip. {p['rt_replies']} replies after a warm-up, counted per reply, in both delivery modes.",
        "- **Workers**: 1 process, then 4 processes together (each its own plugin manager and "
        "connection, *delivery left to a dispatcher*, each on its share of the members), interleaved "
        f"rounds of {p['pg_seconds']:g} s. Server CPU is read from `/proc` for the database's backends; "
        "WAL from `pg_current_wal_lsn()`.",
        "- **PgBouncer** (when installed): a private instance in transaction pooling mode on its own "
        "port; the same 1 and 4 workers through it, for `docs/scaling.md`.",
        "- **MariaDB** (for the record, no target): round trips counted the same way (client "
        "commands with sequence id 0)."])
    targets: list[Target] = []
    workers: list[Worker] = []
    db = bouncer = None
    try:
        db = PgDatabase()
        cli(run.config, db.url, "db", "upgrade")
        pool = [Worker(f"pg-{k}", Embedded, run.config, db.url, mode="dispatcher", members=members)
                for k in range(4)]
        workers += pool
        how = pool[0].call("describe")
        progress(f"postgres: {members:,} members join (4 workers)")
        for k, w in enumerate(pool):
            w.send("join", k, len(range(k, members, 4)), 4)
        join_s = max(w.recv()["seconds"] for w in pool)
        proxy = Worker("wire", WireCounter, "127.0.0.1", 5432)
        workers.append(proxy)
        trips = {}
        for mode in ("dispatcher", "inline"):
            trips[mode] = _count_trips(run.config, db.via(proxy.call("port")), proxy, members,
                                       p["rt_replies"], mode)
        sec.extra.append(f"Joins: {members:,} in {join_s:.1f} s with 4 workers.")
        sec.extra.append("Round trips per reply: " + "; ".join(
            f"{mode}: **{rt:.2f}** (client messages per reply: {per})" for mode, (rt, per) in trips.items()))
        one = Series("1 worker process")
        four = Series("4 worker processes")
        use = {1: [], 4: []}
        rows = {1: one, 4: four}
        extra_rows = {}
        if bouncer_ok():
            try:
                bouncer = PgBouncer(pool_size=8)
                bpool = [Worker(f"pgb-{k}", Embedded, run.config, db.via(bouncer.port), mode="dispatcher",
                                members=members) for k in range(4)]
                workers += bpool
                check = bpool[0].call("outcomes", 50)
                extra_rows = {1: (Series("1 worker via PgBouncer (transaction mode)"), bpool[:1]),
                              4: (Series("4 workers via PgBouncer (transaction mode)"), bpool)}
                sec.extra.append(f"PgBouncer in transaction mode: 50 replies through it answered {check}.")
            except Exception as exc:  # noqa: BLE001 - PgBouncer is for the record only
                sec.extra.append(f"PgBouncer: not measured ({short_error(exc)}).")
        for n in (1, 4):
            together(pool[:n], "run", p["warmup"], per=lambda k, n=n: {"part": (k, n)})
        for r in range(p["pg_rounds"]):
            for n in (1, 4):
                cpu0, wal0 = db.server_cpu(), db.wal_lsn()
                res = together(pool[:n], "run", p["pg_seconds"], per=lambda k, n=n: {"part": (k, n)})
                server = db.server_cpu() - cpu0
                rows[n].add(res["rate"])
                use[n].append((res["cpu"] / res["n"] * 1e6, server / res["n"] * 1e6,
                               (db.wal_lsn() - wal0) / res["n"], (res["cpu"] + server) / res["seconds"]))
                if n in extra_rows:
                    series, bp = extra_rows[n]
                    res = together(bp, "run", p["pg_seconds"], per=lambda k, n=n: {"part": (k, n)})
                    series.add(res["rate"])
            progress(f"postgres: round {r + 1}/{p['pg_rounds']}: 1 worker {one.values[-1]:,.0f}/s, "
                     f"4 workers {four.values[-1]:,.0f}/s")
        for n, s in rows.items():
            worker_us, server_us, wal, cores = (statistics.median(v[i] for v in use[n]) for i in range(4))
            s.note = (f"{how}; per reply: worker CPU {worker_us:,.0f} µs, server CPU {server_us:,.0f} µs, "
                      f"WAL {wal:,.0f} B; {cores:.2f} cores busy")
            run.pg_usage = getattr(run, "pg_usage", {})
            run.pg_usage[n] = {"rate": s.median, "worker_us": worker_us, "server_us": server_us, "wal": wal,
                               "cores": cores}
        sec.rows = [one, four] + [s for s, _ in extra_rows.values()]
        rt = trips["dispatcher"][0]
        t = below_target("pg_trips", "PostgreSQL round trips per reply, counted at the wire",
                         f"{rt:.2f} (delivery before return: {trips['inline'][0]:.2f})", rt, 2.0, "",
                         mode="delivery left to a dispatcher; " + how)
        if t.met is False:
            t.profile = [f"- Client messages per reply: {trips['dispatcher'][1]} (Q = one simple-protocol "
                         "statement each, BEGIN and COMMIT included)."]
        targets.append(t)
        r4 = paired(four, one)
        t4 = Target("pg_workers", "PostgreSQL: 4 worker processes vs 1",
                    f"{fmt(r4, 'x')} ({fmt(four.median, four.unit)} vs {fmt(one.median, one.unit)})",
                    "≥ 2×", None if r4 is None else r4 >= 2.0, mode=how)
        if t4.met is False:
            t4.gap = (f"{fmt(r4, 'x')} against ≥ 2×; the 2 cores are shared by the workers and the server "
                      f"({run.pg_usage[4]['cores']:.2f} cores busy with 4 workers).")
        targets.append(t4)
        try:
            targets.append(_mariadb(run, members=min(members, 500)))
        except Exception as exc:  # noqa: BLE001
            sec.extra.append(f"MariaDB: not measured ({short_error(exc)}).")
    except Exception as exc:  # noqa: BLE001
        sec.error = short_error(exc)
        targets = [failed("pg_trips", "PostgreSQL round trips per reply", "≤ 2", sec.error)]
    finally:
        _close(workers)
        if bouncer is not None:
            bouncer.stop()
        if db is not None:
            db.drop()
    return targets, sec


def bouncer_ok() -> bool:
    return shutil.which("pgbouncer") is not None or os.path.exists("/usr/sbin/pgbouncer")


def _mariadb(run, members: int) -> Target:
    db = MariaDatabase()
    proxy = None
    try:
        proxy = Worker("wire-mysql", WireCounter, "127.0.0.1", 3306, "mysql")
        cli(run.config, db.via(3306), "db", "upgrade")
        w = Worker("maria-join", Embedded, run.config, db.via(3306), members=members)
        w.call("join", 0, members)
        w.close()
        rt, per = _count_trips(run.config, db.via(proxy.call("port")), proxy, members, 200, "dispatcher",
                               "mysql")
    finally:
        if proxy is not None:
            proxy.close()
        db.drop()
    return Target("maria_trips", "MariaDB round trips per reply (for the record)",
                  f"{rt:.2f} (commands per reply: {per})", "as few as it allows; documented", None)


def webhook(run):
    p = run.plan
    sec = Section("webhook", "4. `POST /webhooks/whop` vs an empty WSGI app on the same waitress", [
        "- **whopfunnel**: `whopfunnel --config plugin.yaml serve` as a subprocess (waitress, 4 threads, "
        "the outbox dispatcher and hooks in its job thread, polling off), on a copy of the template "
        "database, `whop.base_url` pointing at a minimal fake API (`bench/_tinywhop.py`) that accepts "
        "every send, so each reply is also delivered by the server's dispatcher.",
        "- **empty app**: a WSGI callable that reads the body and answers 200, on waitress with the same "
        "4 threads.",
        f"- **load**: `wrk -t2 -c8 --latency` with a Lua script cycling through `chat.message.created` "
        "bodies signed at the start of the figure (distinct members, message ids and webhook ids, half "
        f"valid replies); the same bodies go to both. {p['wh_rounds']} interleaved rounds of "
        f"{p['wh_seconds']} s."])
    missing = wrk_missing()
    if missing:
        progress(missing)
        sec.error = missing
        return [failed("webhook", "`POST /webhooks/whop` vs an empty WSGI app", "≥ 0.5×, p99 < 20 ms",
                       missing)], sec
    targets: list[Target] = []
    workers: list[Worker] = []
    serve = None
    try:
        api = Worker("fake-api", Served, "api")
        workers.append(api)
        folder = run.disk_root / "webhook"
        config = write_config(folder / "config", base_url=api.call("url") + "/api/v1")
        url = run.copy_template(folder, "webhook.db")
        settled = settle_outbox(folder / "webhook.db")
        empty = Worker("empty-app", Served, "empty", threads=4)
        workers.append(empty)
        serve = ServeProcess(config, serve_env(environ(url)), folder / "serve.log")
        if settled.startswith("could not"):
            progress("webhook: waiting for serve to send the queued welcomes")
            drained, took = wait_drained(lambda: api.call("sent"))
            settled += f" ({drained:,} sends in {took:.0f} s)"
        sec.extra.append(f"Outbox before the rounds: {settled}.")
        script = folder / "bodies.lua"
        script.write_text(LUA)
        bodies = signed_bodies(run.members, 2, SECRET, "sanity", 1)
        sanity = [serve.post(*b) for b in bodies]
        warm = write_bodies(folder / "warm.tsv", signed_bodies(run.members, 1500, SECRET, "warm", 2))
        est = wrk(serve.url + "/webhooks/whop", 1, warm, script)
        wrk(empty.call("url") + "/webhooks/whop", 1, warm, script)
        per_round = max(2000, int(est["rps"] * p["wh_seconds"] * 3))
        files = [write_bodies(folder / f"round{r}.tsv",
                              signed_bodies(run.members, per_round, SECRET, f"r{r}", 10 + r))
                 for r in range(p["wh_rounds"])]
        wf, base = Series("whopfunnel serve", "req/s"), Series("empty WSGI app", "req/s")
        lat = {k: (Series(f"{name}: p50 latency", "ms", False), Series(f"{name}: p99 latency", "ms", False))
               for k, name in (("wf", "whopfunnel serve"), ("empty", "empty WSGI app"))}
        problems = []
        for r, bodies_file in enumerate(files):
            for key, target_url, s in (("empty", empty.call("url"), base), ("wf", serve.url, wf)):
                res = wrk(target_url + "/webhooks/whop", p["wh_seconds"], bodies_file, script)
                s.add(res["rps"])
                lat[key][0].add(res["p50"])
                lat[key][1].add(res["p99"])
                if key == "wf" and (res["non2xx"] or res["wraps"] or res["socket_errors"]):
                    problems.append(f"round {r + 1}: {res['non2xx']} non-2xx, {res['wraps']} body-list "
                                    f"restarts, socket errors: {res['socket_errors'] or 'none'}")
            progress(f"webhook: round {r + 1}/{len(files)}: serve {wf.values[-1]:,.0f} req/s "
                     f"(p99 {lat['wf'][1].values[-1]:.1f} ms), empty {base.values[-1]:,.0f} req/s")
        stopped = serve.stop()
        serve = None
        sec.extra.append(_drain(run, folder, api))
        sec.rows = [wf, base, *lat["wf"], *lat["empty"]]
        sec.extra.append(f"Sanity: two signed deliveries answered {sanity}.")
        run.serve_stop = stopped
        sec.extra.append(
            "`whopfunnel serve` got SIGTERM right after the last wrk round (requests may still be queued): "
            + (f"exited {stopped['exit']} after {stopped['seconds']:.1f} s" if stopped["exit"] != -9 else
               f"**had not exited after {stopped['seconds']:.0f} s and was killed**")
            + f"; {stopped['tracebacks']} tracebacks in its log"
            + (f" (first: `{stopped['first']}`)." if stopped["first"] else "."))
        if problems:
            sec.extra.append("Problems: " + "; ".join(problems))
        r_rps = paired(wf, base)
        p99 = lat["wf"][1].median
        met = None if r_rps is None else (r_rps >= 0.5 and p99 is not None and p99 < 20)
        label = "`POST /webhooks/whop` vs an empty WSGI app, same waitress and threads, 8 clients"
        t = Target("webhook", label,
                   f"{fmt(r_rps, 'x')} ({fmt(wf.median)} vs {fmt(base.median)} req/s); p99 {fmt(p99, 'ms')} "
                   f"vs {fmt(lat['empty'][1].median, 'ms')}; p50 {fmt(lat['wf'][0].median, 'ms')}",
                   "≥ 0.5×, p99 < 20 ms", met, floor_ratio=r_rps)
        if met is False:
            gaps = []
            if r_rps < 0.5:
                gaps.append(f"requests/s at {fmt(r_rps, 'x')} of the empty app: needs {0.5 / r_rps:.1f}×")
            if p99 >= 20:
                gaps.append(f"p99 {fmt(p99, 'ms')} against < 20 ms: {p99 / 20:.1f}× over")
            t.gap = "; ".join(gaps) + "."
            progress("webhook: profiling the request in-process (target missed)")
            prof = Worker("webhook-profile", WebhookInProcess, config,
                          environ(run.copy_template(folder, "webhook_profile.db")))
            workers.append(prof)
            sample = signed_bodies(run.members, 400, SECRET, "prof", 99)
            t.profile = profile_lines(prof.call("profile", sample), unit="request")
        targets.append(t)
    except Exception as exc:  # noqa: BLE001
        sec.error = short_error(exc)
        targets = [failed("webhook", "`POST /webhooks/whop` vs an empty WSGI app", "≥ 0.5×, p99 < 20 ms",
                          sec.error)]
    finally:
        if serve is not None:
            serve.stop()
        _close(workers)
    return targets, sec


def _drain(run, folder, api) -> str:
    """How fast one `whopfunnel serve` empties an outbox of queued welcomes (a launch burst's
    backlog) against the local fake API: the CPU-bound ceiling of one dispatcher thread."""
    members = run.plan["drain_members"]
    url = f"sqlite:///{folder / 'drain.db'}"
    try:
        config = str(folder / "config" / "plugin.yaml")
        cli(config, url, "db", "upgrade")
        joins = Worker("drain-joins", Embedded, config, url, mode="dispatcher",
                       clock=Clock(datetime.now(timezone.utc) - timedelta(minutes=1)))
        joins.call("join", 0, members)
        joins.close()
        serve = ServeProcess(config, serve_env(environ(url)), folder / "drain.log")
        try:
            sent, took = wait_drained(lambda: api.call("sent"), quiet=3.0, limit=90, until=members)
        finally:
            serve.stop()
        run.drain = {"sent": sent, "seconds": took, "rate": sent / took if took else None}
        return (f"Outbox drain (for `docs/scaling.md`): one `whopfunnel serve` sent {sent:,} queued welcomes "
                f"(a DM channel opened and a message posted for each) in {took:.1f} s = "
                f"**{sent / took:,.0f} welcomes/s** against the local fake API, which answers at once: the "
                "ceiling of one dispatcher thread before any network latency.")
    except Exception as exc:  # noqa: BLE001 - for the record only
        return f"Outbox drain: not measured ({short_error(exc)})."


def sweep(run):
    p = run.plan
    stored, expired = p["sweep_stored"], p["sweep_expired"]
    sec = Section("sweep", f"5. The sweep: {expired:,} expired among {stored:,} stored", [
        "- The database is made by `whopfunnel db upgrade`; one member per tenant joins through "
        "`on_member_join`, and one `INSERT ... SELECT` copies those rows to the stored count (only the "
        "member ids and `expires_at` differ; `bench/_sweep.py`).",
        "- **whopfunnel**: `pm.runtime.host.sweep()` on a manager built as `whopfunnel serve` "
        "builds it (`make_plugin_manager(..., clock=..., delivery='dispatcher')`), one minute after "
        "the due rows expired, on a fresh copy of the database each round: it ends the conversations "
        "and owes their hook calls, set-based. The owed calls (`on_timeout`, `on_conversation_end`) "
        "are then fired as the hooks job fires them, timed on their own row (no target: it is "
        "per-call plugin code).",
        "- **floor**: one `UPDATE conversations SET status, end_reason, active_user, ended_at, revision "
        "WHERE status = 'active' AND expires_at <= ?` in one transaction, on another fresh copy. "
        "**batched floor** (no target): raw `sqlite3` doing that UPDATE in the sweep's transactions "
        "(select up to a batch of ids, update them, commit), so what batching costs shows apart.",
        "- Both sides run with SQLite's checkpoints deferred, as `whopfunnel serve` runs: its "
        "checkpoint job copies the WAL back every second, off the commit path, so no commit on "
        "either side pays for a checkpoint and none runs while a side is timed.",
        "- **nothing expired**: the same call a minute before anything expires, repeated."])
    targets: list[Target] = []
    w = small = None
    try:
        progress(f"sweep: building {stored:,} stored conversations")
        w = Worker("sweep", SweepBench, run.config, str(run.disk_root), stored, expired)
        info = w.call("info")
        noop = w.call("nothing_expired", p["noop_sweeps"])
        floor, wf = Series("floor: one indexed UPDATE", "ms", False), Series("whopfunnel sweep", "ms", False)
        batched = Series(f"batched floor: the UPDATE in transactions of {info['batch']}", "ms", False)
        hooks = Series("then: firing the owed hook calls", "ms", False)
        plan = ended = None
        for r in range(p["sweep_rounds"]):
            f = w.call("floor")
            floor.add(f["seconds"] * 1e3)
            plan = f["plan"]
            batched.add(w.call("floor_batched")["seconds"] * 1e3)
            res = w.call("sweep")
            wf.add(res["seconds"] * 1e3)
            ended = res["ended"]
            if "hooks_seconds" in res:
                hooks.add(res["hooks_seconds"] * 1e3)
                hooks.note = f"{res['hooks_fired']:,} hook calls fired"
            progress(f"sweep: round {r + 1}/{p['sweep_rounds']}: sweep {res['seconds']:.2f} s "
                     f"({res['ended']} ended), UPDATE {f['seconds']:.3f} s")
            if res["seconds"] > p["sweep_round_limit"]:
                sec.extra.append(f"One round only: the sweep took {res['seconds']:.0f} s, over the "
                                 f"{p['sweep_round_limit']} s that the run's time budget allows for more.")
                break
        wf.note = f"ended {ended:,} per sweep" if ended is not None else ""
        floor.note = f"plan: {plan}"
        none = Series("sweep with nothing expired", "ms", False)
        for v in noop:
            none.add(v * 1e3)
        none.note = f"{len(noop)} sweeps"
        sec.rows = [wf, floor, batched, *([hooks] if hooks.values else []), none]
        sec.extra.append(f"Database: {info['stored']:,} conversations, {info['size_mb']:.0f} MB, built in "
                         f"{info['build_seconds']:.1f} s.")
        r = paired(wf, floor)
        label = f"sweep, {expired:,} expired of {stored:,} stored, vs one indexed UPDATE on a copy"
        t = Target("sweep", label,
                   f"{fmt(r, 'x')} ({fmt(wf.median, 'ms')} vs {fmt(floor.median, 'ms')}; "
                   f"{wf.median / expired * 1e3:,.0f} µs per expired conversation; "
                   f"{fmt(paired(wf, batched), 'x')} of the batched floor)",
                   "≤ 1.5×", None if r is None else r <= 1.5, floor_ratio=r)
        if t.met is False:
            t.gap = f"{fmt(r, 'x')} of the UPDATE against ≤ 1.5×: {r / 1.5:.1f}× over."
            progress("sweep: profiling a smaller sweep (target missed)")
            folder = run.disk_root / "profile"
            folder.mkdir(exist_ok=True)
            small = Worker("sweep-profile", SweepBench, run.config, str(folder), 50_000, 500)
            t.profile = profile_lines(small.call("sweep", profile=True), unit="expired conversation")
            t.profile[0] = t.profile[0].replace("- cProfile", "- cProfile of a 500-of-50,000 sweep")
        targets.append(t)
        targets.append(below_target("sweep_noop", f"sweep with nothing expired, {stored:,} stored",
                                    f"{fmt(none.median, 'ms')} ({fmt(none.lo)}–{fmt(none.hi)})", none.median,
                                    5.0, "ms", target="< 5 ms"))
    except Exception as exc:  # noqa: BLE001
        sec.error = short_error(exc)
        targets = [failed("sweep", "sweep vs one indexed UPDATE", "≤ 1.5×", sec.error)]
    finally:
        _close([x for x in (w, small) if x])
    return targets, sec

