"""Sending jobs to the workers: a Celery client configured with the broker only.

The web process never imports worker/ (that would drag TensorFlow in); it sends the task by name.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from celery import Celery

from core.jobs import JobStore
from core.routing import TASK_NAME, WEBHOOK_TASK_NAME, queue_for
from core.settings import get_settings
from core.webhooks import due_deliveries

logger = logging.getLogger(__name__)


@lru_cache
def get_celery_client() -> Celery:
    settings = get_settings()
    client = Celery("atelier-web", broker=settings.redis_url)
    client.conf.broker_connection_retry_on_startup = False
    return client


def enqueue(job_id: str, size: int, priority: int = 0) -> None:
    """Put the job on its Celery queue; raises (kombu/redis errors) if the broker cannot take it.
    priority: core.routing.fair_priority (0, the default, is served first)."""
    get_celery_client().send_task(
        TASK_NAME, args=[job_id], queue=queue_for(size), task_id=job_id, priority=priority
    )


def announce_finished(store: JobStore, job_id: str) -> None:
    """A job the web finished (cancelled while queued): send the webhook tasks it makes due (its own,
    its batch's: core.webhooks.due_deliveries). Never raises: the cancel itself has happened."""
    try:
        for target, kind in due_deliveries(store, job_id):
            get_celery_client().send_task(
                WEBHOOK_TASK_NAME, args=[target, kind], queue=get_settings().webhook_queue
            )
    except Exception:
        logger.exception("job %s: could not queue its webhook", job_id)
