"""Sending jobs to the workers: a Celery client configured with the broker only.

The web process never imports worker/ (that would drag TensorFlow in); it sends the task by name.
"""

from __future__ import annotations

from functools import lru_cache

from celery import Celery

from app.settings import get_settings

TASK_NAME = "worker.tasks.stylize"


@lru_cache
def get_celery_client() -> Celery:
    settings = get_settings()
    client = Celery("atelier-web", broker=settings.redis_url)
    client.conf.broker_transport_options = {"visibility_timeout": settings.broker_visibility_timeout}
    client.conf.broker_connection_retry_on_startup = False
    return client


def queue_for(size: int) -> str:
    """The queue a job of this output size goes to: large jobs to the GPU queue when one is set."""
    settings = get_settings()
    if settings.large_job_queue and size >= settings.large_job_min_size:
        return settings.large_job_queue
    return settings.queue_name


def enqueue(job_id: str, size: int) -> None:
    """Put the job on its Celery queue; raises (kombu/redis errors) if the broker cannot take it."""
    get_celery_client().send_task(TASK_NAME, args=[job_id], queue=queue_for(size), task_id=job_id)
