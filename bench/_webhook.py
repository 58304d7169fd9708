"""`POST /webhooks/whop` under wrk: pre-signed bodies, the `whopfunnel serve` subprocess,
and wrk's output read back.

Bodies are `chat.message.created` deliveries for distinct members (a shuffled cycle over
all of them) and distinct message and webhook ids, about half of them valid replies,
signed at generation time (Standard Webhooks, Whop's raw-secret key), so a run must use
them within the 5-minute tolerance. The wrk Lua script loads its thread's share of a
bodies file and sends each body once; if it runs out it starts over (the server then
answers "duplicate"), and it reports how often that happened.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from _harness import ROOT, profiled
from _tinywhop import channel_of
from _workload import INVALID, VALID, user_id

LUA = r"""
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", counter)
  table.insert(threads, thread)
  counter = counter + 1
end
function init(args)
  local nthreads = tonumber(args[2])
  reqs = {}
  wraps = 0
  local i = 0
  for line in io.lines(args[1]) do
    if i % nthreads == tid then
      local id, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", "/webhooks/whop", {
        ["Content-Type"] = "application/json", ["webhook-id"] = id,
        ["webhook-timestamp"] = ts, ["webhook-signature"] = sig}, body)
    end
    i = i + 1
  end
  idx = 0
end
function request()
  idx = idx + 1
  if idx > #reqs then idx = 1; wraps = wraps + 1 end
  return reqs[idx]
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + (t:get("wraps") or 0) end
  io.write(string.format("WRAPS %d\n", total))
end
"""


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def delivery(user: int, text: str, seq: str) -> dict:
    uid = user_id(user)
    return {"id": f"evt_{seq}", "api_version": "v1", "type": "chat.message.created",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), "company_id": "biz_bench",
            "data": {"channel": {"id": channel_of(uid), "type": "direct_message"},
                     "message": {"id": f"msg_{seq}", "content": text, "created_at": None,
                                 "user": {"id": uid, "username": uid, "name": f"Member {user}"}},
                     "audience": {"user_ids": [uid, "user_bot"]}, "reason": "direct_message"}}


def signed_bodies(members: int, count: int, secret: str, tag: str, seed: int) -> list[tuple]:
    """(webhook-id, timestamp, signature, body) for `count` deliveries."""
    rng = random.Random(seed)
    order: list[int] = []
    now = int(time.time())
    out = []
    for i in range(count):
        if not order:
            order = list(range(members))
            rng.shuffle(order)
        user = order.pop()
        text = rng.choice(VALID) if rng.random() < 0.5 else rng.choice(INVALID)
        body = json.dumps(delivery(user, text, f"{tag}_{i}"), separators=(",", ":")).encode()
        msg_id = f"wh_{tag}_{i}"
        out.append((msg_id, str(now), sign(secret, msg_id, now, body), body))
    return out


def write_bodies(path: Path, bodies) -> Path:
    with open(path, "wb") as fh:
        for msg_id, ts, sig, body in bodies:
            fh.write(f"{msg_id}\t{ts}\t{sig}\t".encode() + body + b"\n")
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def wrk(url: str, seconds: float, bodies: Path, script: Path, threads: int = 2,
        connections: int = 8) -> dict:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
           "-s", str(script), url, "--", str(bodies), str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    text = out.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if out.returncode != 0 or rps is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {(out.stderr or text).strip()[-400:]}")
    pct = {p: _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M)}
    total = re.search(r"(\d+) requests in", text)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:(.*)", text)
    wraps = re.search(r"WRAPS (\d+)", text)
    return {"rps": float(rps.group(1)), "p50": pct.get("50"), "p99": pct.get("99"),
            "requests": int(total.group(1)) if total else 0, "non2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errors.group(1).strip() if errors else "",
            "wraps": int(wraps.group(1)) if wraps else 0}


def wrk_missing() -> str | None:
    if shutil.which("wrk"):
        return None
    return "wrk is not installed: `apt-get install -y wrk` (Debian's package), then run again"


class ServeProcess:
    """`whopfunnel --config CONFIG serve --port PORT` as a subprocess."""

    def __init__(self, config: str, env: dict, log: Path):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log_path = log
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "whopfunnel_plugin", "--config", config, "serve", "--host", "127.0.0.1",
             "--port", str(self.port)], env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"whopfunnel serve exited {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"whopfunnel serve did not answer /healthz within 60 s: {self.tail()}")

    def post(self, msg_id: str, ts: str, sig: str, body: bytes) -> tuple[int, dict]:
        request = urllib.request.Request(self.url + "/webhooks/whop", data=body, method="POST", headers={
            "Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": ts,
            "webhook-signature": sig})
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())

    def tail(self, chars: int = 600) -> str:
        self.log.flush()
        return self.log_path.read_bytes()[-chars:].decode(errors="replace").strip()

    def stop(self, wait: float = 15.0) -> dict:
        """SIGTERM; how long it took, the exit code (-9: killed after `wait` seconds) and the
        tracebacks in the log, with the last line of the first one."""
        start = time.perf_counter()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        text = self.log_path.read_text(errors="replace")
        first = ""
        if "Traceback" in text:
            tail = text.split("Traceback", 1)[1].splitlines()
            first = next((line for line in tail if line and not line.startswith((" ", "Traceback"))), "")
        return {"exit": self.proc.returncode, "seconds": time.perf_counter() - start,
                "tracebacks": text.count("Traceback"), "first": first.strip()}


class WebhookInProcess:
    """The same app built from public pieces (`make_plugin_manager` + `service.server.wire`),
    called as a WSGI callable in one thread, for a cProfile of where a request's time goes."""

    def __init__(self, config: str, env: dict):
        import inspect

        import _tinywhop

        from whopfunnel_plugin import make_plugin_manager
        from whopfunnel_plugin.service.server import wire

        served = ({"delivery": "dispatcher"}  # what `whopfunnel serve` builds
                  if "delivery" in inspect.signature(make_plugin_manager).parameters else {})
        self.pm = make_plugin_manager(config, environ=env, transport=_tinywhop.accepting_transport(),
                                      entrypoints=False, **served)
        self.app, self.jobs = wire(self.pm, env)

    def _call(self, msg_id, ts, sig, body) -> str:
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/webhooks/whop", "CONTENT_LENGTH": str(len(body)),
                   "wsgi.input": io.BytesIO(body), "HTTP_WEBHOOK_ID": msg_id, "HTTP_WEBHOOK_TIMESTAMP": ts,
                   "HTTP_WEBHOOK_SIGNATURE": sig, "CONTENT_TYPE": "application/json"}
        seen = []
        b"".join(self.app(environ, lambda status, headers: seen.append(status)))
        return seen[0]

    def profile(self, bodies: list) -> dict:
        statuses: dict[str, int] = {}

        def run():
            for b in bodies:
                status = self._call(*b)
                statuses[status] = statuses.get(status, 0) + 1

        summary = profiled(run, len(bodies))
        summary["statuses"] = statuses
        return summary

    def close(self) -> None:
        close = getattr(self.pm, "close", None) or self.pm.runtime.close
        close()


def serve_env(base_env: dict) -> dict:
    env = dict(os.environ)
    env.update(base_env)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def settle_outbox(path: Path) -> str:
    """The template's queued welcomes, marked sent with one UPDATE, so `serve` starts with an
    empty outbox (as a server that kept up would) instead of sending 10,000 welcomes during
    the measurement. Assumes today's `messages` table; returns what it did."""
    import sqlite3

    db = sqlite3.connect(path)
    try:
        with db:
            count = db.execute("UPDATE messages SET status = 'sent' WHERE direction = 'out' "
                               "AND status IN ('pending', 'failed')").rowcount
        return f"{count:,} queued welcomes marked sent with one UPDATE before `serve` started"
    except sqlite3.Error as exc:
        return f"could not mark the queued welcomes sent ({exc}); waited for `serve` to send them"
    finally:
        db.close()


def wait_drained(sent, quiet: float = 2.0, limit: float = 120.0,
                 until: int | None = None) -> tuple[int, float]:
    """Wait until the fake API has seen `until` sends, or none for `quiet` seconds; returns
    (sends, seconds from the start to the last send seen)."""
    start = last_change = time.perf_counter()
    first = last = sent()
    while time.perf_counter() - start < limit:
        time.sleep(0.1)
        now = sent()
        if now != last:
            last, last_change = now, time.perf_counter()
            if until is not None and last - first >= until:
                break
        elif time.perf_counter() - last_change >= quiet:
            break
    return last - first, last_change - start
