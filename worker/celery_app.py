"""Celery configuration of the worker: Redis broker and result backend, settings fit for long jobs.

Start a worker with:  celery -A worker.celery_app worker --concurrency=1 -Q atelier
"""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery
from celery.signals import worker_process_init, worker_ready, worker_shutdown

from core.jobs import WORKER_HEARTBEAT_SECONDS, get_job_store
from core.retention import cleanup
from core.settings import get_settings

logger = logging.getLogger(__name__)
settings = get_settings()

app = Celery("atelier", broker=settings.redis_url, backend=settings.redis_url, include=["worker.tasks"])
app.conf.update(
    task_default_queue=settings.queue_name,
    # A job is acknowledged when it ends, not when it starts: a worker that dies mid-job leaves it
    # in Redis, which hands it out again after the visibility timeout (longer than any job may run).
    task_acks_late=True,
    # A prefork child killed mid-job (OOM killer, SIGKILL) puts the job straight back on the queue;
    # the task caps the deliveries (ATELIER_JOB_MAX_ATTEMPTS), so a job that kills its worker every
    # time cannot loop (docs/reliability.md).
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_transport_options={
        "visibility_timeout": settings.broker_visibility_timeout,
        # Look for messages of dead workers (unacked past the visibility timeout) every so often, not
        # kombu's default of every 100 s: a tenth of the timeout, between 1 s and a minute.
        "unacked_restore_interval": max(1, min(60, settings.broker_visibility_timeout // 10)),
        "unacked_restore_throttle": 1,
    },
    # The job store holds every outcome; Celery's own results would only be keys to expire.
    task_ignore_result=True,
    task_soft_time_limit=settings.job_soft_time_limit,
    task_time_limit=settings.job_hard_time_limit,
    task_serializer="json",
    accept_content=["json"],
    worker_send_task_events=False,
    # Redis restarts: the worker reconnects by itself, forever, as often as every 2 s.
    broker_connection_retry_on_startup=True,
    broker_connection_retry=True,
    broker_connection_max_retries=None,
    broker_connection_timeout=5,
)

_heartbeat_stop = threading.Event()


def _beat(hostname: str) -> None:
    """Heartbeat and retention clean-up until shutdown; a failure is logged and tried again later."""
    period = min(WORKER_HEARTBEAT_SECONDS, settings.cleanup_interval_seconds)
    next_cleanup = 0.0
    while True:
        try:
            get_job_store().worker_seen(hostname)
            if time.monotonic() >= next_cleanup:
                next_cleanup = time.monotonic() + settings.cleanup_interval_seconds
                cleanup()
        except Exception:
            logger.exception("worker %s: heartbeat or clean-up failed", hostname)
        if _heartbeat_stop.wait(period):
            return


@worker_ready.connect
def _start_heartbeat(sender: object = None, **_: object) -> None:
    hostname = str(getattr(sender, "hostname", None) or "worker")
    logger.info("worker %s: ready, consuming queue %s", hostname, settings.queue_name)
    threading.Thread(target=_beat, args=(hostname,), name="atelier-heartbeat", daemon=True).start()


@worker_shutdown.connect
def _stop_heartbeat(**_: object) -> None:
    _heartbeat_stop.set()


@worker_process_init.connect
def _warm_up(**_: object) -> None:
    """Build the VGG19 extractor when a worker process starts (a prefork child, or a solo worker),
    not on its first job; in a thread, so a prefork child answers its parent in time (worker/warm.py)."""
    from worker.warm import warm_up_in_background

    warm_up_in_background()
