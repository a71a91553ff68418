"""Celery configuration of the worker: the Redis broker, settings fit for long jobs; no result backend
(the job store holds every outcome).

Start a worker with:  celery -A worker.celery_app worker --concurrency=1 -Q atelier
"""

from __future__ import annotations

import logging
import os
import threading
import time

from celery import Celery
from celery.signals import (
    celeryd_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from core.jobs import WORKER_HEARTBEAT_SECONDS, get_job_store
from core.retention import cleanup
from core.settings import get_settings
from worker.lease import MessageLease, request_preemption

logger = logging.getLogger(__name__)
settings = get_settings()

app = Celery("atelier", broker=settings.redis_url, include=["worker.tasks"])
app.conf.update(
    task_default_queue=settings.queue_name,
    # A job is acknowledged when it ends, not when it starts: a worker that dies mid-job leaves it
    # unacknowledged in Redis, which hands it out again after the visibility timeout.
    task_acks_late=True,
    # A prefork child killed mid-job (OOM killer, SIGKILL) puts the job straight back on the queue;
    # the task caps the deliveries (ATELIER_JOB_MAX_ATTEMPTS), so a job that kills its worker every
    # time cannot loop (docs/reliability.md).
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_transport_options={
        # The visibility timeout is the job lease: each live worker renews its messages every third of
        # it (worker/lease.py: MessageLease), so only a dead worker's messages (running or reserved)
        # age past it, and any idle worker requeues them, at the front of their queue.
        "visibility_timeout": settings.job_lease_seconds,
        # How often an idle worker looks for them (kombu's default: every 100 s): a tenth of the
        # lease, at least every second.
        "unacked_restore_interval": max(1.0, settings.job_lease_seconds / 10),
        "unacked_restore_throttle": 1,
        # The lock of that look-up; a worker killed while holding it would block the others for
        # kombu's default of 5 minutes. A look-up takes milliseconds, and a double restore is
        # harmless (kombu restores a message in a WATCHed transaction).
        "unacked_mutex_expire": 10,
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
_message_lease = MessageLease(get_job_store(), settings.job_lease_seconds)


def _beat(hostname: str) -> None:
    """Heartbeat and retention clean-up until shutdown; a failure is logged and tried again later."""
    period = min(WORKER_HEARTBEAT_SECONDS, settings.cleanup_interval_seconds)
    next_cleanup = 0.0
    while True:
        try:
            get_job_store().worker_seen(hostname)
            if time.monotonic() >= next_cleanup:
                next_cleanup = time.monotonic() + settings.cleanup_interval_seconds
                _announce_abandoned(cleanup().abandoned_jobs)
        except Exception:
            logger.exception("worker %s: heartbeat or clean-up failed", hostname)
        if _heartbeat_stop.wait(period):
            return


def _announce_abandoned(job_ids: list[str]) -> None:
    """Jobs the clean-up failed as abandoned are finished too: their webhooks go out."""
    from worker.webhooks import announce_finished

    for job_id in job_ids:
        announce_finished(get_job_store(), job_id)


@celeryd_init.connect
def _name_the_processes(sender: object = None, **_: object) -> None:
    """The node name, for the pool's processes to report their engine's state under (worker/warm.py):
    set before the pool forks, so every child inherits it."""
    from worker.warm import WORKER_NAME_ENV

    os.environ[WORKER_NAME_ENV] = str(sender or "worker")


@worker_ready.connect
def _start_heartbeat(sender: object = None, **_: object) -> None:
    hostname = str(getattr(sender, "hostname", None) or "worker")
    logger.info("worker %s: ready, consuming queue %s", hostname, settings.queue_name)
    threading.Thread(target=_beat, args=(hostname,), name="atelier-heartbeat", daemon=True).start()
    _message_lease.start()


@worker_shutting_down.connect
def _preempt_running_jobs(sender: object = None, sig: str = "", **_: object) -> None:
    """SIGTERM (docker stop, a scale-down, a spot notice) or Ctrl+C: running jobs checkpoint and go
    back to the queue within a step instead of holding up the shutdown (docs/reliability.md)."""
    hostname = str(sender or "worker")
    logger.warning("worker %s: %s, shutting down: running jobs hand themselves back", hostname, sig)
    request_preemption(get_job_store(), hostname)


@worker_shutdown.connect
def _stop_heartbeat(sender: object = None, **_: object) -> None:
    _heartbeat_stop.set()
    _message_lease.stop()
    hostname = str(getattr(sender, "hostname", None) or "")
    if hostname:
        try:  # a clean exit: no longer a live worker (metrics, /readyz) right away
            get_job_store().worker_gone(hostname)
        except Exception:
            logger.warning("worker %s: could not remove its heartbeat", hostname)


@worker_process_init.connect
def _warm_up(**_: object) -> None:
    """Build the VGG19 extractor when a worker process starts (a prefork child, or a solo worker),
    not on its first job; in a thread, so a prefork child answers its parent in time (worker/warm.py)."""
    from worker.warm import warm_up_in_background

    warm_up_in_background()
