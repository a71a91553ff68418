"""Which Celery task a job runs as, and on which queue: shared by the web (sends) and the worker."""

from __future__ import annotations

from core.settings import get_settings

TASK_NAME = "worker.tasks.stylize"


def queue_for(size: int) -> str:
    """The queue a job of this output size goes to: large jobs to the GPU queue when one is set."""
    settings = get_settings()
    if settings.large_job_queue and size >= settings.large_job_min_size:
        return settings.large_job_queue
    return settings.queue_name


# The webhook delivery (worker/webhooks.py), on settings.webhook_queue: its own worker, so a delivery
# never waits behind a style transfer.
WEBHOOK_TASK_NAME = "worker.webhooks.deliver"
