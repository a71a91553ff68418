"""GET /metrics: Prometheus metrics of the whole service, read from Redis at scrape time.

Every number is fleet-wide and lives in Redis (core/jobs.py: metrics_snapshot): counters and
histograms are incremented by whichever process changes a job (web submissions, worker claims and
finishes), gauges are read from the job store and the broker when scraped. So any uvicorn worker
process can answer a scrape with the same numbers, and no prometheus_client multiprocess directory is
needed. Off unless ATELIER_METRICS_TOKEN is set; then the scraper must send it as a bearer token
(docs/deploy.md, Metrics).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from core.jobs import JobStore, get_job_store
from core.settings import get_settings

router = APIRouter(tags=["operations"])

COUNTERS = {  # counter name in Redis -> (metric name without _total, help)
    "submitted": ("atelier_jobs_submitted", "Jobs accepted by POST /api/jobs."),
    "succeeded": ("atelier_jobs_succeeded", "Jobs that finished with a result."),
    "failed": ("atelier_jobs_failed", "Jobs that failed (engine error, time limit, workers kept dying)."),
    "cancelled": ("atelier_jobs_cancelled", "Jobs cancelled, queued or running."),
    "preempted": ("atelier_jobs_preempted", "Times a stopping worker (SIGTERM) handed a running job back."),
    "redelivered": ("atelier_jobs_redelivered", "Times a job was resumed after its worker died."),
    "style_targets_cached": (
        "atelier_style_targets_cached",
        "Style images' targets (one per style and rung) a finished job found in its worker's cache.",
    ),
    "style_targets_computed": (
        "atelier_style_targets_computed",
        "Style images' targets (one per style and rung) a finished job computed (a style pass each).",
    ),
}


class JobMetrics(Collector):
    """The service's metrics, collected from one JobStore.metrics_snapshot per scrape."""

    def __init__(self, store: JobStore, queues: list[str]) -> None:
        self.store = store
        self.queues = queues

    def collect(self) -> Iterator[Metric]:
        snapshot = self.store.metrics_snapshot(self.queues)
        depth = GaugeMetricFamily(
            "atelier_queue_depth",
            "Job messages waiting in a Celery queue (not yet taken by a worker).",
            labels=["queue"],
        )
        for queue, length in snapshot.queue_depths.items():
            depth.add_metric([queue], length)
        yield depth
        jobs = GaugeMetricFamily("atelier_jobs", "Jobs queued or running now.", labels=["status"])
        for status, count in snapshot.jobs_by_status.items():
            jobs.add_metric([status], count)
        yield jobs
        for key, (name, help_text) in COUNTERS.items():
            yield CounterMetricFamily(name, help_text, value=snapshot.counts.get(key, 0))
        yield GaugeMetricFamily(
            "atelier_workers_live",
            "Workers whose last heartbeat (every 10 s) is under 30 s old.",
            value=snapshot.live_workers,
        )
        for name, help_text in (
            ("queue_wait_seconds", "Seconds from submission to the first worker starting the job."),
            ("job_duration_seconds", "Seconds from a job's start to its end (any final status)."),
        ):
            histogram = snapshot.histograms[name]
            yield HistogramMetricFamily(
                f"atelier_{name}", help_text, buckets=histogram.buckets, sum_value=histogram.sum
            )
        steps = HistogramMetricFamily(
            "atelier_step_seconds",
            "Mean seconds per optimisation step of each succeeded job, by output size bucket "
            "(size: the largest side in px up to which the job's size falls, or larger).",
            labels=["size"],
        )
        for name, histogram in snapshot.histograms.items():
            if name.startswith("step_seconds:"):
                steps.add_metric([name.split(":", 1)[1]], histogram.buckets, histogram.sum)
        yield steps


def _authorized(authorization: str | None) -> None:
    token = get_settings().metrics_token.get_secret_value()
    if not token:  # not public by default: an operator opts in with a token
        raise HTTPException(status_code=404, detail="Not Found")
    if authorization is None or not secrets.compare_digest(
        authorization.encode(), f"Bearer {token}".encode()
    ):
        raise HTTPException(
            status_code=401,
            detail="metrics need the bearer token ATELIER_METRICS_TOKEN",
            headers={"WWW-Authenticate": "Bearer"},
        )


@router.get("/metrics", include_in_schema=False)
def metrics(authorization: Annotated[str | None, Header()] = None) -> Response:
    """Prometheus text format; 404 while ATELIER_METRICS_TOKEN is empty, 401 without it."""
    _authorized(authorization)
    settings = get_settings()
    queues = [settings.queue_name] + [settings.large_job_queue] * bool(settings.large_job_queue)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobMetrics(get_job_store(), queues))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
