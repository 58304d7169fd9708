"""Round trips counted at the wire: a small asyncio TCP proxy between the database driver
and the server that parses what the client sends.

PostgreSQL: after the startup packet (and an SSLRequest/GSSENCRequest the server
refused), every client message is a type byte and a length. A simple Query ('Q') and
an extended-protocol Sync ('S') each end a round trip: the client then waits for
ReadyForQuery. Connect through the proxy with `sslmode=disable`, or the stream is
encrypted and cannot be read (the counter reports that).

MariaDB/MySQL: after the handshake, every command from the client is a packet with
sequence id 0 (COM_QUERY, COM_STMT_EXECUTE, ...), each answered before the next: one
round trip each.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections import Counter

SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104


class _PgParser:
    def __init__(self, counts: Counter):
        self.counts, self.buf, self.startup = counts, b"", True

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.startup:
                if len(self.buf) < 8:
                    return
                length, code = struct.unpack("!II", self.buf[:8])
                if len(self.buf) < length:
                    return
                self.buf = self.buf[length:]
                if code == SSL_REQUEST or code == GSSENC_REQUEST:
                    self.counts["ssl_or_gss_request"] += 1  # the server's 'N' keeps us in startup
                    continue
                self.counts["startup"] += 1
                self.startup = False
                continue
            if len(self.buf) < 5:
                return
            kind = chr(self.buf[0])
            length = struct.unpack("!I", self.buf[1:5])[0]
            if len(self.buf) < 1 + length:
                return
            self.buf = self.buf[1 + length:]
            self.counts[kind] += 1


class _MySqlParser:
    def __init__(self, counts: Counter):
        self.counts, self.buf, self.packets = counts, b"", 0

    def feed(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 4:
            length = self.buf[0] | self.buf[1] << 8 | self.buf[2] << 16
            if len(self.buf) < 4 + length:
                return
            seq, command = self.buf[3], self.buf[4] if length else None
            self.buf = self.buf[4 + length:]
            self.packets += 1
            if self.packets == 1:
                continue  # the handshake response (authentication)
            if seq == 0:
                self.counts[f"command_{command}"] += 1
                self.counts["commands"] += 1


class WireCounter:
    """A proxy on 127.0.0.1:<port> to `upstream`; `counts()` since the last `reset()`."""

    def __init__(self, upstream_host: str, upstream_port: int, protocol: str = "postgres"):
        self.upstream = (upstream_host, upstream_port)
        self.parser = _PgParser if protocol == "postgres" else _MySqlParser
        self.total: Counter = Counter()
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True, name="wire-counter")
        self.thread.start()
        self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self._port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _client(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        counts: Counter = Counter()
        parser = self.parser(counts)

        async def pump(src, dst, parse) -> None:
            try:
                while data := await src.read(65536):
                    if parse:
                        before = dict(counts)
                        parser.feed(data)
                        with self.lock:
                            for key, value in counts.items():
                                self.total[key] += value - before.get(key, 0)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))

    def port(self) -> int:
        return self._port

    def counts(self) -> dict:
        with self.lock:
            return dict(self.total)

    def reset(self) -> None:
        with self.lock:
            self.total.clear()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def round_trips(counts: dict, protocol: str = "postgres") -> int:
    if protocol == "postgres":
        return counts.get("Q", 0) + counts.get("S", 0)
    return counts.get("commands", 0)
