"""Prometheus metrics for one plugin manager: its own `CollectorRegistry`, never the
process-wide default one, so two managers in one process count separately.

Counters and histograms are updated as things happen (`service/activity.py` calls
them); the outbox backlog, hook failures and loaded funnels are read at scrape time.
`render()` gives the text exposition format that `GET /metrics` serves.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Seconds: a webhook answers in milliseconds; a send waits on Whop; a sweep may take longer.
FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SLOW = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    """Every whopfunnel metric of one manager. `runtime` is read at scrape time only."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.webhooks = Counter("whopfunnel_webhooks", "Webhook deliveries answered, by event "
                                "type, HTTP code and outcome.", ("event", "code", "outcome"),
                                registry=r)
        self.webhook_seconds = Histogram("whopfunnel_webhook_seconds", "Time to answer a webhook.",
                                         ("event",), buckets=FAST, registry=r)
        self.joins = Counter("whopfunnel_joins", "Member joins handled, by funnel and outcome "
                             "(started, restarted, kept, no_funnel, duplicate).",
                             ("funnel", "outcome"), registry=r)
        self.replies = Counter("whopfunnel_replies", "Member replies, by classification (valid, "
                               "invalid, ambiguous, late, ignored).", ("classification",),
                               registry=r)
        self.escalations = Counter("whopfunnel_escalation_steps", "Escalation steps taken for "
                                   "invalid replies, by action.", ("action",), registry=r)
        self.ended = Counter("whopfunnel_conversations_ended", "Conversations ended, by status "
                             "and end reason.", ("status", "reason"), registry=r)
        self.sends = Counter("whopfunnel_sends", "Outbound sends attempted, by recipient "
                             "(member, owner) and result (sent, failed).", ("recipient", "result"),
                             registry=r)
        self.send_seconds = Histogram("whopfunnel_send_seconds", "Time of one outbound send "
                                      "through the Whop API, by recipient.", ("recipient",),
                                      buckets=SLOW, registry=r)
        self.job_seconds = Histogram("whopfunnel_job_seconds", "Time of one run of a periodic "
                                     "job (outbox, hooks, poll, sweep, reload).", ("job",),
                                     buckets=SLOW, registry=r)
        self.job_failures = Counter("whopfunnel_job_failures", "Periodic job runs that raised.",
                                    ("job",), registry=r)
        self.reloads = Counter("whopfunnel_funnel_reloads", "Funnel reloads, by result (loaded, "
                               "unchanged, rejected).", ("result",), registry=r)
        r.register(_ScrapeTime(runtime))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ScrapeTime:
    """What is read when Prometheus asks: the outbox backlog (one grouped query), hook
    failures by plugin (the manager's own count) and the funnels loaded."""

    def __init__(self, runtime):
        self.runtime = runtime

    def describe(self):
        return []  # nothing to describe up front: collect() must not run at registration

    def collect(self):
        runtime = self.runtime
        up = GaugeMetricFamily("whopfunnel_database_up", "1 when the outbox backlog could be "
                               "read from the database at this scrape, else 0.")
        try:
            backlog = runtime.store.outbox.backlog(runtime.clock.now())
        except Exception:  # noqa: BLE001 - a scrape during an outage still answers
            backlog = None
        up.add_metric([], 0 if backlog is None else 1)
        found = [up]
        if backlog is not None:
            for key, name, text in (
                    ("pending", "outbox_pending", "Outbound messages waiting to be sent."),
                    ("failed", "outbox_failed", "Outbound messages that failed repeatedly and "
                     "are still retried."),
                    ("oldest_seconds", "outbox_oldest_seconds", "Age of the oldest unsent "
                     "outbound message, 0 when none.")):
                family = GaugeMetricFamily(f"whopfunnel_{name}", text)
                family.add_metric([], backlog[key])
                found.append(family)
        hooks = CounterMetricFamily("whopfunnel_hook_failures", "Exceptions raised by "
                                    "third-party hook implementations (and plugin loads), by "
                                    "plugin and hook.", labels=("plugin", "hook"))
        for (plugin, hook), count in sorted(runtime.pm.errors.items()):
            hooks.add_metric([plugin, hook], count)
        funnels = GaugeMetricFamily("whopfunnel_funnels_loaded", "Funnels new conversations can "
                                    "start on, by funnel id and version.",
                                    labels=("funnel", "version"))
        for funnel in list(runtime.host.funnels.values()):
            funnels.add_metric([funnel.id, funnel.version], 1)
        return [*found, hooks, funnels]
