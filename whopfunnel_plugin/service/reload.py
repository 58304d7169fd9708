"""Hot reload of funnels: on SIGHUP, and with `serve --reload` when a funnel file changes.

The files are read and validated again, with the validators, template variables and
ladders the service started with. If every funnel is valid and every route still names
one, `host.funnels` is replaced in one assignment: joins from then on start on the new
definitions, and conversations in flight keep the version they started on (each one
points at its stored snapshot, SPEC §5). Otherwise the old funnels keep running and each
problem is logged as `file:line:column: message`.

Each worker reloads its own funnels; several workers on one database are fine (a new
version's snapshot row is created once per tenant, whoever gets there first). plugin.yaml
itself (routes, ladders, timeouts) is read at start only: changing it needs a restart.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from ..config import check_routes
from ..errors import FunnelError, WhopFunnelError
from ..funnel.catalog import load_all
from ..preflight import reminder_problems

log = logging.getLogger("whopfunnel.reload")


class FunnelWatcher:
    """Notices changes to the funnel files by polling their mtimes and sizes (and what a
    folder holds). `stat` is injectable for tests."""

    def __init__(self, paths: Callable[[], list[Path]], stat: Callable = os.stat):
        self.paths = paths
        self.stat = stat
        self.seen = self.fingerprint()

    def fingerprint(self) -> tuple:
        found = []
        for path in self.paths():
            try:
                if path.is_dir():
                    names = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
                    found += [(str(p), *self._stat(p)) for p in names]
                else:
                    found.append((str(path), *self._stat(path)))
            except OSError:
                found.append((str(path), "unreadable"))
        return tuple(found)

    def _stat(self, path: Path) -> tuple:
        try:
            st = self.stat(path)
        except OSError:
            return ("missing",)
        return (st.st_mtime_ns, st.st_size)

    def changed(self) -> bool:
        now = self.fingerprint()
        if now == self.seen:
            return False
        self.seen = now
        return True


class Reloader:
    def __init__(self, runtime, *, watch: bool = False, watcher: FunnelWatcher | None = None):
        self.runtime = runtime
        self.watcher = watcher or (FunnelWatcher(runtime.config.funnel_paths) if watch else None)
        self._requested = threading.Event()

    def request(self) -> None:
        """Ask for a reload at the next run (safe from a signal handler)."""
        self._requested.set()

    def run_once(self) -> bool | None:
        """The periodic job: reload if asked to or if the files changed; None if neither."""
        asked = self._requested.is_set()
        self._requested.clear()
        changed = self.watcher.changed() if self.watcher is not None else False
        if not (asked or changed):
            return None
        return self.reload(why="SIGHUP" if asked else "funnel files changed")

    def reload(self, why: str = "asked") -> bool:
        """Load and swap in the funnels; False (the old ones kept) if any is invalid."""
        runtime = self.runtime
        config, host = runtime.config, runtime.host
        context = getattr(runtime, "plugin_context", None) or {}
        try:
            funnels = load_all(config.funnel_paths(), ladders=config.ladders,
                               validators=context.get("validators", host.validators),
                               template_vars=context.get("template_vars", ()))
            check_routes(config, funnels)
            if not funnels:
                raise WhopFunnelError("no funnel files left: keeping the ones loaded")
        except FunnelError as exc:
            self._rejected(why, [str(p) for p in exc.problems])
            return False
        except WhopFunnelError as exc:
            self._rejected(why, str(exc).splitlines())
            return False
        old = host.funnels
        changes = _changes(old, funnels)
        if not changes:
            runtime.activity.metrics.reloads.labels("unchanged").inc()
            log.info("funnels reloaded (%s): nothing changed", why)
            return True
        host.funnels = dict(funnels)  # one assignment: each join sees the old or the new set
        runtime.activity.metrics.reloads.labels("loaded").inc()
        log.info("funnels reloaded (%s): %s; conversations in flight keep their version", why,
                 ", ".join(changes), extra={"funnels": {f.id: f.version for f in funnels.values()}})
        for problem in reminder_problems(config, funnels.values()):
            log.warning("%s", problem)
        return True

    def _rejected(self, why: str, problems: list[str]) -> None:
        self.runtime.activity.metrics.reloads.labels("rejected").inc()
        log.error("funnel reload (%s) rejected: the previous funnels keep running; %d problem%s:",
                  why, len(problems), "" if len(problems) == 1 else "s")
        for problem in problems:
            log.error("%s", problem)


def _changes(old: dict, new: dict) -> list[str]:
    out = []
    for fid in sorted(set(old) | set(new)):
        before, after = old.get(fid), new.get(fid)
        if before is None:
            out.append(f"{fid} added ({after.version})")
        elif after is None:
            out.append(f"{fid} removed")
        elif before.version != after.version:
            out.append(f"{fid} {before.version} -> {after.version}")
    return out
