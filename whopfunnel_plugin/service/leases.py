"""Short leases, kept alive while this process works on what they cover.

An outbox message being sent and a batch of hook calls being fired are claimed with a
lease of `LEASE`. While the work runs, a background thread renews the leases every
`EVERY` seconds; when the process dies, renewals stop and the leases run out, so
another worker (or this one, restarted) takes the work over within seconds instead of
waiting out a lease long enough for the slowest send.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta

log = logging.getLogger("whopfunnel.leases")
LEASE = timedelta(seconds=15)
EVERY = 5.0  # seconds between renewals: a lease survives two missed renewals


class LeaseKeeper:
    def __init__(self, store, clock, *, lease: timedelta = LEASE, every: float = EVERY):
        self.store = store
        self.clock = clock
        self.lease = lease
        self.every = every
        self._held: dict[str, Counter] = {"outbox": Counter(), "effects": Counter()}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def until(self):
        return self.clock.now() + self.lease

    @contextmanager
    def holding(self, kind: str, tokens):
        """Keep renewing `tokens` (claims of `kind`: outbox | effects) until the block ends."""
        tokens = self.hold(kind, tokens)
        try:
            yield
        finally:
            self.drop(kind, tokens)

    def hold(self, kind: str, tokens) -> list[str]:
        """Start renewing `tokens` until `drop`."""
        tokens = [t for t in tokens if t]
        with self._lock:
            self._held[kind].update(tokens)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._loop, name="whopfunnel-leases",
                                                daemon=True)
                self._thread.start()
        return tokens

    def drop(self, kind: str, tokens) -> None:
        with self._lock:
            self._held[kind].subtract(tokens)
            self._held[kind] = +self._held[kind]  # drop counts at zero

    def held(self, kind: str) -> list[str]:
        with self._lock:
            return list(self._held[kind])

    def renew(self) -> int:
        """Extend every lease held now; returns how many rows were renewed."""
        outbox, effects = self.held("outbox"), self.held("effects")
        if not outbox and not effects:
            return 0
        until = self.until()
        return self.store.outbox.renew(outbox, until) + self.store.effects.renew(effects, until)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            with self._lock:
                if not any(self._held.values()):
                    self._thread = None  # idle: the next holding() starts a new thread
                    return
            try:
                self.renew()
            except Exception as exc:  # noqa: BLE001 - the database may be down; try again
                log.warning("could not renew leases: %s", str(exc).splitlines()[0] if str(exc) else exc)

    def close(self) -> None:
        """Stop renewing; whatever is still held is given back at once (clean shutdown)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.every + 1)
        outbox, effects = self.held("outbox"), self.held("effects")
        if outbox or effects:
            try:
                now = self.clock.now()
                self.store.outbox.release(outbox, now)
                self.store.effects.release(effects, now)
            except Exception:  # noqa: BLE001 - closing anyway; the leases will run out
                log.warning("could not release %d leases at shutdown; they run out in %ds",
                            len(outbox) + len(effects), self.lease.total_seconds())
