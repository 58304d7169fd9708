"""What the service did, as it happens: one log line and the matching metrics.

The server, the runtime, the dispatcher and the job runner call in here at a few hook
points; nothing here changes what they do. Log lines carry their fields as `extra`
too (event, tenant, code, outcome, ms, ...), so `--log-format json` gives them to a
log shipper as separate keys.
"""

from __future__ import annotations

import logging
import time

from ..hookspecs import hookimpl
from .metrics import Metrics

webhook_log = logging.getLogger("whopfunnel.webhooks")
send_log = logging.getLogger("whopfunnel.outbox")
job_log = logging.getLogger("whopfunnel.jobs")
conversation_log = logging.getLogger("whopfunnel.conversations")


class Activity:
    def __init__(self, runtime):
        self.metrics = Metrics(runtime)

    # -- webhooks ---------------------------------------------------------------------------

    def timed_webhook(self, handler, environ, start_response):
        """Run `handler(environ, start_response, note)` and report it once it answered;
        the handler fills `note` (event, tenant, answer, error) as it learns them."""
        note: dict = {}
        started = time.perf_counter()

        def respond(status, headers, exc_info=None):
            note["code"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info) if exc_info else start_response(
                status, headers)

        try:
            return handler(environ, respond, note)
        finally:
            self.webhook(note, time.perf_counter() - started)

    def webhook(self, note: dict, seconds: float) -> None:
        event = note.get("event") or "-"
        code = note.get("code", 500)
        answer = note.get("answer") or {}
        outcome = answer.get("status") or ("refused" if code < 500 else "failed")
        self.metrics.webhooks.labels(event, str(code), outcome).inc()
        self.metrics.webhook_seconds.labels(event).observe(seconds)
        if not webhook_log.isEnabledFor(logging.INFO):
            return
        tenant = note.get("tenant") or "-"
        detail = answer.get("reason") or note.get("error") or _reply_detail(note.get("outcome"))
        webhook_log.info(
            "webhook %s %s: %d %s%s in %.1f ms", event, tenant, code, outcome,
            f" ({detail})" if detail else "", seconds * 1000,
            extra={"event": event, "tenant": tenant, "code": code, "outcome": outcome,
                   "detail": detail, "ms": round(seconds * 1000, 2)})

    # -- events, whatever brought them (webhook, poller, a host calling the hooks) -----------

    def event(self, kind: str, outcome) -> None:
        decision = outcome.decision
        if kind == "join":
            funnel = outcome.conversation.funnel_id if outcome.conversation else "-"
            self.metrics.joins.labels(funnel, outcome.status).inc()
        seen = getattr(decision, "interaction", None)
        if kind == "message" and seen is not None:
            self.metrics.replies.labels(seen.classification).inc()
            if seen.classification == "invalid" and seen.action:
                self.metrics.escalations.labels(seen.action).inc()

    @hookimpl
    def on_conversation_end(self, conversation):
        self.metrics.ended.labels(conversation.status, conversation.end_reason or "-").inc()
        conversation_log.info("conversation %s (%s, %s) ended: %s (%s)", conversation.id,
                              conversation.experience_id, conversation.user_id,
                              conversation.status, conversation.end_reason,
                              extra={"conversation": conversation.id,
                                     "tenant": conversation.experience_id,
                                     "status": conversation.status,
                                     "reason": conversation.end_reason})

    # -- sends and jobs -----------------------------------------------------------------------

    def sent(self, message, ok: bool, seconds: float) -> None:
        """One send of an outbox message (a failure is logged by the dispatcher itself)."""
        self.metrics.sends.labels(message.recipient, "sent" if ok else "failed").inc()
        self.metrics.send_seconds.labels(message.recipient).observe(seconds)
        if ok:
            send_log.info("sent message %s to the %s of conversation %s (%s) in %.0f ms",
                          message.id, message.recipient, message.conversation_id,
                          message.experience_id, seconds * 1000,
                          extra={"message_id": message.id, "recipient": message.recipient,
                                 "conversation": message.conversation_id,
                                 "tenant": message.experience_id, "ms": round(seconds * 1000, 2)})

    def job(self, name: str, seconds: float, result=None, failed: bool = False) -> None:
        self.metrics.job_seconds.labels(name).observe(seconds)
        if failed:
            self.metrics.job_failures.labels(name).inc()
        if name == "sweep" and result is not None and (result.total or result.reminded):
            per = ", ".join(f"{exp} {n}" for exp, n in sorted(result.ended.items()))
            job_log.info("sweep ended %d conversations%s and sent %d reminders in %.0f ms",
                         result.total, f" ({per})" if per else "", result.reminded,
                         seconds * 1000, extra={"ended": result.total,
                                                "reminded": result.reminded,
                                                "ms": round(seconds * 1000, 2)})


def _reply_detail(outcome) -> str:
    seen = getattr(getattr(outcome, "decision", None), "interaction", None)
    if seen is None:
        return ""
    if seen.classification == "invalid":
        return f"reply invalid, attempt {seen.attempt}, step {seen.action}"
    return f"reply {seen.classification}"
