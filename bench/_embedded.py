"""whopfunnel as an embedding host drives it: `make_plugin_manager(...)` and
`pm.hook.on_message(message=MessageReceived(...))`, nothing internal.

Sends go to an `httpx.MockTransport` that refuses them (503, `x-should-retry: false`,
so the client does not sleep between retries), so the outbox stays pending and a
reply measured with delivery before return pays for the delivery attempt, not for a
network. Delivery mode: the documented `make_plugin_manager` keyword when the package
has one (found by inspecting its signature), else today's behaviour.
"""

from __future__ import annotations

import gc
import inspect
import itertools
import logging
import os
import subprocess
import sys
import threading
import time

from _harness import ROOT, profiled, rss_mb
from _workload import FUNNEL_ID, FUNNEL_YAML, Driver, experience, shard, user_id

SECRET = "ws_bench_secret_0123456789"
BOT_USER = "user_bot"
API_KEY = "bench_api_key"


def write_config(folder, base_url: str = "http://127.0.0.1:9/api/v1") -> str:
    """plugin.yaml + funnels/bench.yaml in `folder`; returns the plugin.yaml path."""
    (folder / "funnels").mkdir(parents=True, exist_ok=True)
    (folder / "funnels" / f"{FUNNEL_ID}.yaml").write_text(FUNNEL_YAML)
    (folder / "plugin.yaml").write_text(f"""\
name: whopfunnel-bench
database: sqlite:///unused.db          # DATABASE_URL wins
funnels: funnels/
routes:
  - {{default: true, experience: exp_0, funnel: {FUNNEL_ID}}}
whop:
  base_url: {base_url}
  poll_every: 0                        # no polling fallback: the bench sends webhooks
timeouts: {{conversation: 24h, sweep_every: 1h}}
""")
    return str(folder / "plugin.yaml")


def environ(db_url: str) -> dict:
    return {"DATABASE_URL": db_url, "WHOP_API_KEY": API_KEY, "WHOP_WEBHOOK_SECRET": SECRET,
            "WHOP_BOT_USER_ID": BOT_USER, "PATH": os.environ.get("PATH", "")}


def cli(config: str, db_url: str, *args: str) -> str:
    """`whopfunnel --config CONFIG ARGS...` as a subprocess (the public command line)."""
    out = subprocess.run([sys.executable, "-m", "whopfunnel_plugin", "--config", config, *args],
                         env=environ(db_url), capture_output=True, text=True, cwd=ROOT, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"whopfunnel {' '.join(args)} failed ({out.returncode}): "
                           f"{(out.stderr or out.stdout).strip()[-500:]}")
    return out.stdout


def refusing_transport():
    import httpx

    def refuse(request):
        return httpx.Response(503, headers={"x-should-retry": "false"},
                              json={"error": {"message": "the benchmark refuses sends"}})

    return httpx.MockTransport(refuse)


class Clock:
    """A clock that stays where it is set (`make_plugin_manager(..., clock=...)` takes any
    object with `now()`)."""

    def __init__(self, when):
        self.when = when

    def now(self):
        return self.when


def delivery_choice(factory, mode: str) -> tuple[dict, str]:
    """The keyword for `mode` ("inline" | "dispatcher") if make_plugin_manager documents one."""
    params = inspect.signature(factory).parameters
    if "delivery" in params:
        return {"delivery": mode}, f"make_plugin_manager(..., delivery={mode!r})"
    for name in ("inline_delivery", "deliver_inline"):
        if name in params:
            return {name: mode == "inline"}, f"make_plugin_manager(..., {name}={mode == 'inline'})"
    return {}, ""


class Embedded:
    """One plugin manager on one database, driven through the public hooks."""

    def __init__(self, config: str, db_url: str, *, mode: str = "inline", members: int = 0,
                 seed: int = 1, clock=None, sends: str = "refuse"):
        from _tinywhop import accepting_transport

        from whopfunnel_plugin import make_plugin_manager

        logging.getLogger("whopfunnel").setLevel(logging.ERROR)  # refused sends log a warning each
        kwargs, how = delivery_choice(make_plugin_manager, mode)
        extra = {"clock": clock} if clock is not None else {}
        transport = refusing_transport() if sends == "refuse" else accepting_transport()
        self.pm = make_plugin_manager(config, environ=environ(db_url), transport=transport,
                                      entrypoints=False, **kwargs, **extra)
        if not how:
            runtime = getattr(self.pm, "runtime", None)
            if mode == "inline":
                how = "today's default (commit, then deliver before return)"
            elif runtime is not None and hasattr(runtime, "inline_delivery"):
                runtime.inline_delivery = False  # what `serve` does; no public choice yet
                how = "no public choice yet: stand-in pm.runtime.inline_delivery = False"
            else:
                how = "no public choice and no stand-in: today's default"
        self.how = how
        self.members = members
        self.seed = seed
        self.tag = f"{os.getpid()}_{time.time_ns() % 10**9}"
        self.ids = itertools.count()

    def describe(self) -> str:
        return self.how

    # -- events ---------------------------------------------------------------------------

    def join(self, first: int, count: int, step: int = 1) -> dict:
        from whopfunnel_plugin import MemberJoined

        start = time.perf_counter()
        for user in range(first, first + count * step, step):
            self.pm.hook.on_member_join(event=MemberJoined(
                experience_id=experience(user), user_id=user_id(user), user_name=f"Member {user}"))
        return {"n": count, "seconds": time.perf_counter() - start}

    def _reply_loop(self, driver: Driver, deadline: float | None, limit: int | None, out: list) -> None:
        from whopfunnel_plugin import MessageReceived

        hook, ids, tag = self.pm.hook.on_message, self.ids, self.tag
        n = 0
        clock = time.perf_counter
        while (limit is None or n < limit) and (deadline is None or clock() < deadline):
            user, text = driver.next()
            hook(message=MessageReceived(experience_id=experience(user), user_id=user_id(user),
                                         message_id=f"m{tag}_{next(ids)}", text=text))
            n += 1
        out.append(n)

    def run(self, seconds: float | None = None, *, threads: int = 1, part: tuple[int, int] = (0, 1),
            start_at: float | None = None, replies: int | None = None) -> dict:
        """Replies to random members of shard `part` for `seconds` (or `replies` in all),
        from `threads` threads, each on its own share of those members."""
        members = shard(range(self.members), *part)
        self.seed += 1
        drivers = [Driver(shard(members, k, threads), self.seed * 1000 + k) for k in range(threads)]
        if start_at is not None:
            time.sleep(max(0.0, start_at - time.time()))
        counts: list[int] = []
        cpu = time.process_time()
        start = time.perf_counter()
        deadline = start + seconds if seconds is not None else None
        limit = None if replies is None else max(1, replies // threads)
        if threads == 1:
            self._reply_loop(drivers[0], deadline, limit, counts)
        else:
            pool = [threading.Thread(target=self._reply_loop, args=(d, deadline, limit, counts))
                    for d in drivers]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
        took = time.perf_counter() - start
        return {"n": sum(counts), "seconds": took, "rate": sum(counts) / took,
                "cpu": time.process_time() - cpu, "valid": sum(d.valid for d in drivers)}

    def outcomes(self, replies: int) -> dict:
        """What the hooks answered for a few replies (a sanity check of the workload)."""
        from whopfunnel_plugin import MessageReceived

        seen: dict[str, int] = {}
        driver = Driver(range(self.members), self.seed + 77)
        for _ in range(replies):
            user, text = driver.next()
            results = self.pm.hook.on_message(message=MessageReceived(
                experience_id=experience(user), user_id=user_id(user),
                message_id=f"m{self.tag}_{next(self.ids)}", text=text))
            status = next((getattr(r, "status", None) for r in results or () if hasattr(r, "status")),
                          "no outcome")
            seen[status] = seen.get(status, 0) + 1
        return seen

    def profile(self, replies: int) -> dict:
        return profiled(lambda: self.run(replies=replies), replies)

    def soak(self, replies: int, max_seconds: float, warmup: int, every: int) -> dict:
        """RSS over many replies: after `warmup` replies, then every `every` replies."""
        start = time.perf_counter()
        self.run(replies=warmup)
        gc.collect()
        base = rss_mb()
        samples = [(warmup, base)]
        done = warmup
        while done < replies and time.perf_counter() - start < max_seconds:
            step = min(every - done % every, replies - done)  # sample at multiples of `every`
            done += self.run(replies=step)["n"]
            samples.append((done, rss_mb()))
        gc.collect()
        samples[-1] = (done, rss_mb())
        return {"replies": done, "seconds": time.perf_counter() - start, "warmup": warmup,
                "rss_after_warmup": base, "rss_end": samples[-1][1],
                "rss_max": max(v for _, v in samples), "samples": samples}

    # -- the rest of the public surface the figures use ----------------------------------------

    def sweep(self) -> dict:
        start = time.perf_counter()
        result = self.pm.runtime.host.sweep()
        took = time.perf_counter() - start
        return {"seconds": took, "ended": getattr(result, "total", None)}

    def fire_due(self) -> dict:
        """Fire the hook calls owed (what the server's hooks job does after a sweep)."""
        start = time.perf_counter()
        fired = self.pm.runtime.host.fire_due()
        return {"seconds": time.perf_counter() - start, "fired": fired}

    def sweeps(self, count: int) -> list[float]:
        host = self.pm.runtime.host
        out = []
        for _ in range(count):
            start = time.perf_counter()
            host.sweep()
            out.append(time.perf_counter() - start)
        return out

    def profile_sweep(self) -> dict:
        box = {}
        summary = profiled(lambda: box.update(r=self.pm.runtime.host.sweep()), 1)
        ended = getattr(box.get("r"), "total", None) or 1
        summary["ended"] = summary["calls"] = ended  # per expired conversation, not per sweep:
        summary["us_per_call"] /= ended
        for part in ("top", "sites"):
            summary[part] = [(name, calls / ended, share) for name, calls, share in summary[part]]
        return summary

    def close(self) -> None:
        close = getattr(self.pm, "close", None) or self.pm.runtime.close
        close()
