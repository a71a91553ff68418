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


# Fair queueing across submitters, with Celery's own message priorities on Redis: kombu keeps one list
# per priority step of a queue (the queue's name, then PRIORITY_SEPARATOR and the step, for steps
# above 0) and a worker takes from the lowest step first. A submitter's first waiting job goes at
# step 0, its second at 3, its third at 6, the rest at 9, so one client's batch of 16 never makes
# another client's single job wait behind all of it (docs/api.md, Batches).
PRIORITY_STEPS = (0, 3, 6, 9)  # kombu.transport.redis's default priority_steps
PRIORITY_SEPARATOR = "\x06\x16"  # kombu.transport.redis.Channel.sep


def fair_priority(waiting_ahead: int) -> int:
    """The priority of a submitter's job that has waiting_ahead of its own jobs already queued."""
    return PRIORITY_STEPS[min(max(waiting_ahead, 0), len(PRIORITY_STEPS) - 1)]


def broker_lists(queue: str) -> list[str]:
    """The Redis lists kombu keeps a queue's waiting messages in, one per priority step."""
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]
