"""The outbound request budget against a Whop that answers 429 past N requests per second.

    python bench/bench_ratelimit.py                       # 1,000 sends, fake limit 50/s, budget 45/s
    python bench/bench_ratelimit.py --messages 300 --limit 20 --budget 18 --senders 4
    python bench/bench_ratelimit.py --headers x-ratelimit-reset   # 429s name only the reset time

The built-in fake Whop API runs on loopback (waitress, real HTTP) in its `limit_rate` mode
(fixed one-second windows; a 429 carries Retry-After and X-RateLimit-Reset). `--senders`
threads share one WhopClient, as the dispatcher and the poller of one plugin manager do,
and send `--messages` DMs between them, each with its own Idempotency-Key. A send the client
hands back as RetryLater is deferred the way the outbox defers it (wait `retry_after`, then
the same message with the same key again). Three runs:

    no budget, no pause   what a client without a shared limiter does (the SDK's behaviour)
    no budget             whopfunnel's client with whop.rate_limit: null (429s pause everyone)
    budget                whopfunnel's client with whop.rate_limit: <budget>/s

Printed per run: the 429s the fake answered, RetryLater hand-backs, messages delivered (each
once: checked against the fake's log), elapsed wall time and messages per second.
"""

from __future__ import annotations

import argparse
import math
import threading
import time
from collections import Counter

from _common import machine

from whopfunnel_plugin.errors import RetryLater
from whopfunnel_plugin.whop.client import WhopClient
from whopfunnel_plugin.whop.fake import FakeWhop, serve_in_thread
from whopfunnel_plugin.whop.ratelimit import RateLimiter

KEY = "bench_ratelimit_key"


class NoPause(RateLimiter):
    """No shared pause: the caller that met the 429 sleeps its Retry-After alone and everyone
    else keeps sending, as a client without a shared limiter (the SDK) does."""

    def pause(self, seconds: float) -> None:
        time.sleep(seconds)


def run(name: str, limiter: RateLimiter, args) -> dict:
    fake = FakeWhop(KEY, company_id="biz_bench")
    base_url, stop = serve_in_thread(fake, threads=args.senders)
    deferred = Counter()
    try:
        with WhopClient(KEY, base_url=base_url, limiter=limiter, timeout=10) as client:
            channel = client.open_dm_channel("user_bench", "biz_bench")
            todo = list(range(args.messages))
            lock = threading.Lock()

            def sender() -> None:
                while True:
                    with lock:
                        if not todo:
                            return
                        i = todo.pop(0)
                    while True:
                        try:
                            client.send_message(channel, f"message {i}", idempotency_key=f"bench-{i}")
                            break
                        except RetryLater as exc:  # the outbox would schedule it: wait, resend
                            with lock:
                                deferred[name] += 1
                            time.sleep(exc.retry_after if exc.retry_after is not None else 0.5)

            fake.limit_rate(args.limit, per=1, headers=args.headers)
            started = time.monotonic()
            threads = [threading.Thread(target=sender) for _ in range(args.senders)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - started
    finally:
        stop()
    statuses = Counter(r.status for r in fake.seen_requests() if r.path == "/messages")
    keys = Counter(m["idempotency_key"] for m in fake.sent_messages())
    assert len(keys) == args.messages and set(keys.values()) == {1}, "a message was lost or duplicated"
    return {"run": name, "429s": statuses[429], "deferred": deferred[name], "sent": len(keys),
            "requests": sum(statuses.values()), "seconds": elapsed, "per_second": args.messages / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=50, help="the fake's 429 threshold, requests/s")
    parser.add_argument("--budget", type=float, default=None, help="whop.rate_limit, requests/s "
                        "(default: 90%% of --limit)")
    parser.add_argument("--senders", type=int, default=4, help="threads sharing one client")
    parser.add_argument("--headers", type=lambda text: tuple(text.split(",")),
                        default=("retry-after", "x-ratelimit-reset"),
                        help="what the fake's 429s carry: retry-after, retry-after-ms, x-ratelimit-reset")
    args = parser.parse_args()
    budget = args.budget or math.floor(args.limit * 0.9)
    print(f"# {machine()}")
    print(f"# {args.messages} sends, {args.senders} senders on one client, fake answers 429 past "
          f"{args.limit}/s with {', '.join(args.headers)}, budget {budget:g}/s")
    rows = [run("no budget, no pause", NoPause(), args),
            run("no budget", RateLimiter(), args),
            run(f"budget {budget:g}/s", RateLimiter(budget), args)]
    print(f"{'run':<22}{'429s':>7}{'deferred':>10}{'requests':>10}{'sent':>7}{'seconds':>9}{'msg/s':>8}")
    for r in rows:
        print(f"{r['run']:<22}{r['429s']:>7}{r['deferred']:>10}{r['requests']:>10}{r['sent']:>7}"
              f"{r['seconds']:>9.1f}{r['per_second']:>8.1f}")


if __name__ == "__main__":
    main()
