"""Prometheus metrics (prometheus_client, multiprocess mode): `GET /metrics`.

Every process of a host (gunicorn's workers, Celery's prefork children, beat) writes its
counters and histograms to files under PROMETHEUS_MULTIPROC_DIR, and `/metrics` on any
web process adds them up, so a scrape sees the whole host whichever worker answers.
Settings point PROMETHEUS_MULTIPROC_DIR at a directory of their own when it is not set;
it must be the same for the web and worker processes of a host and emptied when the
deployment starts (`make run` empties `.var/metrics`; see README "Observability").

What is measured where:
- counters and histograms, incremented by the code that does the work (the bus, the
  command batch, the projection runner, the sweep);
- per-projection lag, stalled projections and dead letters, which need a look into every
  tenant: the sweep computes them once per pass and keeps the summary in Redis (a pass
  visits only marked tenants, and a tenant stays marked while any of its figures is not
  zero, so the skipped ones would add zeros: intent_project/sweep_marks.py); `/metrics`
  reads it back with one call, so a scrape costs the same with 1,000 tenants as with one;
- queue depth: the length of each Celery queue in Redis, read at scrape time.

Label cardinality stays bounded with any number of tenants: no metric carries a tenant
label (a tenant's figures are in its API: `/t/<slug>/api/projections/`); command and
event types, statuses and projection names come from the registry, a fixed set.

Who may read it (intent_project/api/metrics.py): whoever holds METRICS_TOKEN (`Authorization: Bearer <token>`, as a
Prometheus scrape config sends it). Without a token set, `/metrics` answers 404: the
figures name command types and volumes, not for the public.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import redis
from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric

# Seconds: a command is consumed in milliseconds when a worker is idle, processed after its
# projections ran; a backlog or an outage stretches both to minutes.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)

COMMANDS_STORED = Counter("intent_commands_stored_total", "Commands accepted by the bus.", ["type"])
COMMANDS_FINAL = Counter(
    "intent_commands_final_total", "Commands that reached a final status.", ["type", "status"]
)
COMMAND_LATENCY = Histogram(
    "intent_command_latency_seconds",
    "From stored to consumed (its events appended) and to processed (its projections ran).",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
)
COMMAND_HANDLING = Histogram(
    "intent_command_batch_seconds",
    "Time to handle one batch of commands (load, decide, append, record the outcomes).",
    buckets=_LATENCY_BUCKETS,
)
COMMAND_CONFLICTS = Counter(
    "intent_command_conflicts_total", "Version conflicts a command was re-decided after."
)
COMMAND_RETRIES = Counter(
    "intent_command_retries_total",
    "Commands scheduled for another attempt: `retry` after a retryable error, `postponed` when not yet due.",
    ["kind"],
)
EVENTS_APPENDED = Counter("intent_events_appended_total", "Events appended to the log.", ["type"])
PROJECTION_BATCH = Histogram(
    "intent_projection_batch_seconds",
    "Time to apply one batch of events to a projection (read models and checkpoint, one transaction).",
    ["projection"],
    buckets=_LATENCY_BUCKETS,
)
PROJECTION_EVENTS = Counter(
    "intent_projection_events_total", "Events applied by a projection.", ["projection"]
)
PROJECTION_FAILURES = Counter(
    "intent_projection_failures_total", "Events a projection failed to apply.", ["projection"]
)
STREAMS_OPEN = Gauge(
    "intent_streams_open",
    "Live streams (Server-Sent Events) open now, all web processes: `events` or `command`.",
    ["kind"],
    multiprocess_mode="livesum",
)
SWEEP_RESENDS = Counter("intent_sweep_resends_total", "Wake-ups the sweep re-sent for pending commands.")

# The sweep's summary of every tenant's projections (see the module docstring).
PROJECTION_SUMMARY_KEY = "intent:metrics:projections"
QUEUES = ("commands", "projections", "sweeps")


def multiprocess_dir() -> str:
    path: str = settings.PROMETHEUS_MULTIPROC_DIR
    os.makedirs(path, exist_ok=True)
    return path


def process_exited(pid: int) -> None:
    """Drop a dead process's live gauges (gunicorn's child_exit, Celery's child shutdown)."""
    multiprocess.mark_process_dead(pid, multiprocess_dir())


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)


def record_projection_summary(summary: dict[str, dict[str, float]]) -> None:
    """Keep the sweep's per-projection summary (lag_events, lag_seconds, stalled,
    dead_letters: the worst or the sum over tenants) for the scrape; it expires if the
    sweep stops, so a dead beat shows as missing figures, not as frozen ones."""
    ttl = max(int(settings.SWEEP_INTERVAL_SECONDS * 6), 30)
    _redis().set(PROJECTION_SUMMARY_KEY, json.dumps(summary), ex=ttl)


# The gauges a scrape computes: name -> (summary key, help).
PROJECTION_GAUGES = {
    "intent_projection_lag_events": ("lag_events", "Events behind the head, worst tenant."),
    "intent_projection_lag_seconds": (
        "lag_seconds",
        "Age of the oldest event not yet applied, worst tenant.",
    ),
    "intent_projection_stalled": ("stalled", "Tenants in which the projection is stalled."),
    "intent_projection_dead_letters": ("dead_letters", "Dead letters, all tenants."),
}
QUEUE_DEPTH = "intent_queue_depth"


class _ScrapeTimeCollector:
    """Figures read when scraped: the sweep's projection summary and the queue depths."""

    def collect(self) -> Iterator[Metric]:
        client = _redis()
        try:
            raw = client.get(PROJECTION_SUMMARY_KEY)
            depths = {queue: client.llen(queue) for queue in QUEUES}
        except redis.RedisError:
            return  # the broker is away: /ready/ says so; these figures are just missing
        summary: dict[str, dict[str, float]] = json.loads(raw) if raw else {}
        for name, (key, help_text) in PROJECTION_GAUGES.items():
            family = GaugeMetricFamily(name, help_text, labels=["projection"])
            for projection, figures in sorted(summary.items()):
                family.add_metric([projection], float(figures.get(key, 0)))
            yield family
        queue = GaugeMetricFamily(QUEUE_DEPTH, "Messages waiting in a Celery queue.", labels=["queue"])
        for name, depth in depths.items():
            queue.add_metric([name], float(depth))
        yield queue


def exposition() -> bytes:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=multiprocess_dir())
    registry.register(_ScrapeTimeCollector())  # type: ignore[arg-type]
    return generate_latest(registry)


def observe_latency(stage: str, seconds: float) -> None:
    COMMAND_LATENCY.labels(stage).observe(max(seconds, 0.0))


def count_final(rows: list[Any]) -> None:
    """Count commands (ORM rows) that reached a final status in this batch."""
    for row in rows:
        if row.status in ("processed", "failed"):
            COMMANDS_FINAL.labels(row.type, str(row.status)).inc()
