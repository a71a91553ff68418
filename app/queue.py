"""Sending jobs to the workers: a Celery client configured with the broker only.

The web process never imports worker/ (that would drag TensorFlow in); it sends the task by name.
"""

from __future__ import annotations

from functools import lru_cache

from celery import Celery

from core.routing import TASK_NAME, queue_for
from core.settings import get_settings


@lru_cache
def get_celery_client() -> Celery:
    settings = get_settings()
    client = Celery("atelier-web", broker=settings.redis_url)
    client.conf.broker_connection_retry_on_startup = False
    return client


def enqueue(job_id: str, size: int) -> None:
    """Put the job on its Celery queue; raises (kombu/redis errors) if the broker cannot take it."""
    get_celery_client().send_task(TASK_NAME, args=[job_id], queue=queue_for(size), task_id=job_id)
