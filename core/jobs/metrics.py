"""The job metrics the store keeps in Redis: counters and histograms, read back in one snapshot.

Each histogram is one hash (keys.histogram_key): b:{upper bound} (per-bucket counts), sum, count, for
queue_wait_seconds, job_duration_seconds and step_seconds:{size bucket}. app/metrics.py turns a
snapshot into Prometheus metrics at scrape time, so every web process serves the same fleet-wide
numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis import Redis

from core.jobs.keys import METRICS_COUNTS_KEY, QUEUE_KEY, RUNNING_KEY, WORKERS_KEY, histogram_key
from core.routing import broker_lists

WORKER_HEARTBEAT_SECONDS = 10.0  # how often a worker process writes its heartbeat
WORKER_FRESH_SECONDS = 60.0  # /readyz counts a worker as seen if it beat this recently
# The live-workers metric: a worker that missed three heartbeats is gone (a clean shutdown removes
# its heartbeat at once: JobStore.worker_gone).
WORKER_LIVE_SECONDS = 3 * WORKER_HEARTBEAT_SECONDS

# Histogram buckets (upper bounds, seconds).
QUEUE_WAIT_BUCKETS = (0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)
JOB_DURATION_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
STEP_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SIZE_BUCKETS = (128, 256, 512, 1024, 2048)  # a job's output side is counted in the first it fits


def size_bucket(size: int) -> str:
    """The label of the size bucket of a job's output side: "128", "256", ... or "larger"."""
    return next((str(bound) for bound in SIZE_BUCKETS if size <= bound), "larger")


def declared_histograms() -> dict[str, tuple[float, ...]]:
    """{histogram name: its bucket bounds} for every histogram the store records."""
    declared = {"queue_wait_seconds": QUEUE_WAIT_BUCKETS, "job_duration_seconds": JOB_DURATION_BUCKETS}
    for label in [*map(str, SIZE_BUCKETS), "larger"]:
        declared[f"step_seconds:{label}"] = STEP_SECONDS_BUCKETS
    return declared


def observe(target: Any, name: str, buckets: tuple[float, ...], value: float) -> None:
    """Queue, on target (a Redis pipeline), one observation of a histogram: its bucket, sum and count."""
    bucket = next((bound for bound in buckets if value <= bound), None)
    key = histogram_key(name)
    target.hincrby(key, f"b:{bucket!r}" if bucket is not None else "b:+Inf", 1)
    target.hincrbyfloat(key, "sum", value)
    target.hincrby(key, "count", 1)


@dataclass(frozen=True)
class Histogram:
    """A Redis-held histogram: cumulative (upper bound, count) pairs ending with +Inf, sum, count."""

    buckets: list[tuple[str, int]]
    sum: float
    count: int


@dataclass(frozen=True)
class MetricsSnapshot:
    """Fleet-wide job numbers (read_snapshot): counters since the Redis was new, gauges now."""

    # submitted, succeeded, failed, cancelled, preempted, redelivered, style_targets_cached/_computed
    counts: dict[str, int]
    jobs_by_status: dict[str, int]  # queued, running (finished jobs are the counters)
    queue_depths: dict[str, int]  # broker messages waiting per Celery queue
    live_workers: int  # workers whose heartbeat is fresher than WORKER_LIVE_SECONDS
    histograms: dict[str, Histogram]


def read_snapshot(redis: Redis, queues: list[str]) -> MetricsSnapshot:
    """Everything app/metrics.py exposes, read in one round trip; queues: the Celery queues' names."""
    declared = declared_histograms()
    with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(METRICS_COUNTS_KEY)
        pipe.zcard(QUEUE_KEY)
        pipe.zcard(RUNNING_KEY)
        pipe.hgetall(WORKERS_KEY)
        for queue in queues:
            for name in broker_lists(queue):  # kombu keeps them in a list per priority step
                pipe.llen(name)
        for name in declared:
            pipe.hgetall(histogram_key(name))
        replies = pipe.execute()
    counts, queued, running, workers = replies[:4]
    lists = len(broker_lists(""))
    lengths = replies[4 : 4 + len(queues) * lists]
    depths = [sum(lengths[index : index + lists]) for index in range(0, len(lengths), lists)]
    histograms = dict(zip(declared, replies[4 + len(queues) * lists :], strict=True))
    fresh = time.time() - WORKER_LIVE_SECONDS
    return MetricsSnapshot(
        counts={name: int(value) for name, value in counts.items()},
        jobs_by_status={"queued": int(queued), "running": int(running)},
        queue_depths=dict(zip(queues, (int(depth) for depth in depths), strict=True)),
        live_workers=sum(1 for seen in workers.values() if float(seen) >= fresh),
        histograms={name: _cumulative(raw, declared[name]) for name, raw in histograms.items()},
    )


def _cumulative(raw: dict[str, str], bounds: tuple[float, ...]) -> Histogram:
    """Cumulative buckets from the per-bucket counts observe keeps (b:{bound}, b:+Inf)."""
    cumulative, total = [], 0
    for bound in bounds:
        total += int(raw.get(f"b:{bound!r}", 0))
        cumulative.append((repr(bound), total))
    cumulative.append(("+Inf", total + int(raw.get("b:+Inf", 0))))
    return Histogram(cumulative, float(raw.get("sum", 0.0)), int(raw.get("count", 0)))
