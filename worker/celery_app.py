"""Celery configuration of the worker: Redis broker and result backend, settings fit for long jobs.

Start a worker with:  celery -A worker.celery_app worker --concurrency=1 -Q atelier
"""

from __future__ import annotations

import logging
import threading

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from app.jobs import WORKER_HEARTBEAT_SECONDS, get_job_store
from app.settings import get_settings
from app.storage import get_storage

logger = logging.getLogger(__name__)
settings = get_settings()

app = Celery("atelier", broker=settings.redis_url, backend=settings.redis_url, include=["worker.tasks"])
app.conf.update(
    task_default_queue=settings.queue_name,
    # A job is acknowledged when it ends, not when it starts: a worker that dies mid-job leaves it
    # in Redis, which hands it out again after the visibility timeout (longer than any job may run).
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout},
    result_backend_transport_options={"visibility_timeout": settings.broker_visibility_timeout},
    task_soft_time_limit=settings.job_soft_time_limit,
    task_time_limit=settings.job_hard_time_limit,
    task_track_started=True,
    result_expires=settings.job_ttl_seconds,
    task_serializer="json",
    accept_content=["json"],
    worker_send_task_events=False,
    broker_connection_retry_on_startup=True,
)

_heartbeat_stop = threading.Event()


def delete_expired_files() -> int:
    """Delete the files of finished jobs whose records have expired; returns how many jobs."""
    store, storage = get_job_store(), get_storage()
    expired = store.take_expired_job_ids()
    for job_id in expired:
        storage.delete_job(job_id)
        logger.info("job %s: expired, files deleted", job_id)
    return len(expired)


def _beat(hostname: str) -> None:
    """Heartbeat and housekeeping until shutdown; a failure is logged and tried again next beat."""
    while True:
        try:
            get_job_store().worker_seen(hostname)
            delete_expired_files()
        except Exception:
            logger.exception("worker %s: heartbeat or file clean-up failed", hostname)
        if _heartbeat_stop.wait(WORKER_HEARTBEAT_SECONDS):
            return


@worker_ready.connect
def _start_heartbeat(sender: object = None, **_: object) -> None:
    hostname = str(getattr(sender, "hostname", None) or "worker")
    logger.info("worker %s: ready, consuming queue %s", hostname, settings.queue_name)
    threading.Thread(target=_beat, args=(hostname,), name="atelier-heartbeat", daemon=True).start()


@worker_shutdown.connect
def _stop_heartbeat(**_: object) -> None:
    _heartbeat_stop.set()
