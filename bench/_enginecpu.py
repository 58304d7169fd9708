"""The engine's own CPU per reply, no database: the bench funnel, 10,000 conversation
states held in a dict, the same reply mix (half valid), each state carried forward.

The engine has no public entry point of its own, so this one figure uses
`whopfunnel_plugin.conversation.engine` (`Engine`, `Context`) directly; the funnel is
loaded with the public `load_funnel`.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from _harness import profiled
from _workload import FUNNEL_YAML, Driver, experience, user_id


class EngineCpu:
    def __init__(self, folder: str, members: int, seed: int = 3):
        from whopfunnel_plugin import load_funnel
        from whopfunnel_plugin.conversation.engine import Context, Engine

        path = Path(folder) / "engine_bench.yaml"
        path.write_text(FUNNEL_YAML)
        self.engine = Engine(load_funnel(path))
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
        self.contexts = {u: Context(user_id(u), experience(u), f"Member {u}") for u in range(members)}
        self.states = {u: self.engine.start(ctx, self.now).state for u, ctx in self.contexts.items()}
        self.members, self.seed = members, seed

    def _loop(self, driver: Driver, deadline: float | None, limit: int | None) -> int:
        engine, states, contexts = self.engine, self.states, self.contexts
        now, step = self.now, timedelta(milliseconds=1)
        n = 0
        while (limit is None or n < limit) and (deadline is None or time.perf_counter() < deadline):
            user, text = driver.next()
            now += step
            states[user] = engine.reply(states[user], contexts[user], text, now).state
            n += 1
        self.now = now
        return n

    def run(self, seconds: float) -> dict:
        self.seed += 1
        driver = Driver(range(self.members), self.seed)
        start = time.process_time()
        wall = time.perf_counter()
        n = self._loop(driver, wall + seconds, None)
        cpu = time.process_time() - start
        wall = time.perf_counter() - wall
        return {"n": n, "us_per_reply": cpu / n * 1e6, "wall_us_per_reply": wall / n * 1e6}

    def profile(self, replies: int) -> dict:
        self.seed += 1
        driver = Driver(range(self.members), self.seed)
        return profiled(lambda: self._loop(driver, None, replies), replies)
