"""Crash and outage recovery for the task: claiming redelivered jobs, checkpoints, patient final writes.

- claim_job: a delivery of a job that is still "running" resumes it only once the lease of the worker
  that ran it has lapsed (that worker died); a live lease means another worker runs it.
- load_checkpoint: the image and step a resumed job continues from (storage.checkpoint_key); storage
  faults while writing the result are worker/storage_retry.py's.
- finish_patiently: the final status is the one write that must not be lost to a short Redis outage.
- hand_back: the worker is shutting down (SIGTERM): checkpoint the running job and release it, so
  another worker continues it at once without counting an attempt.
See docs/reliability.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from redis.exceptions import RedisError

from core.jobs import Claim, ClaimOutcome, JobStatus, JobStore
from core.storage import Storage, checkpoint_key
from worker.broker import requeue_first

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)
T = TypeVar("T")

REDIS_OUTAGE_GRACE_SECONDS = 300.0  # a final status waits this long for Redis to come back
REDIS_RETRY_SECONDS = 1.0


def claim_job(store: JobStore, job_id: str, worker: str, lease_seconds: float, max_attempts: int) -> Claim:
    """Claim the job for this delivery; waits out another worker's lease once.

    If that lease is renewed while we wait, its worker is alive: the job is left to it (LEASED).
    """
    claim = store.claim(job_id, worker, lease_seconds, max_attempts)
    if claim.outcome is not ClaimOutcome.LEASED:
        return claim
    first_lease = claim.lease_until
    logger.info(
        "job %s: redelivered while leased until %.1f; waiting for the lease to lapse", job_id, first_lease
    )
    time.sleep(max(0.0, first_lease - time.time()) + 0.2)
    claim = store.claim(job_id, worker, lease_seconds, max_attempts)
    if claim.outcome is ClaimOutcome.LEASED and claim.lease_until > first_lease:
        logger.info("job %s: its worker renewed the lease, it is alive; this delivery leaves the job", job_id)
    return claim


def load_checkpoint(job_id: str, step: int, storage: Storage) -> tuple[np.ndarray | None, int]:
    """(image, step) of the job's last checkpoint, or (None, 0) to start from the beginning."""
    from spec.errors import ImageError
    from worker.engine.images import load_image

    if step <= 0:
        return None, 0
    try:
        image = load_image(storage.read_bytes(checkpoint_key(job_id)))
    except FileNotFoundError:
        logger.warning("job %s: checkpoint of step %d is missing; starting from step 0", job_id, step)
        return None, 0
    except ImageError as error:  # damaged in storage: the job is not the person's fault to fail
        logger.warning(
            "job %s: checkpoint of step %d unreadable (%s); starting from step 0", job_id, step, error
        )
        return None, 0
    logger.info("job %s: resuming from the checkpoint of step %d", job_id, step)
    return image, step


def finish_patiently(store: JobStore, job_id: str, status: JobStatus, **fields: Any) -> None:
    """JobStore.finish, retried while Redis is unreachable (up to REDIS_OUTAGE_GRACE_SECONDS); then
    the job's webhook, if it has one, goes to the webhooks worker (worker/webhooks.py)."""
    from worker.webhooks import announce_finished

    patiently(job_id, f"record {status}", lambda: store.finish(job_id, status, **fields))
    announce_finished(store, job_id)


def patiently(job_id: str, what: str, call: Callable[[], T]) -> T:
    """call(), retried every second while Redis is unreachable, up to REDIS_OUTAGE_GRACE_SECONDS: for
    the writes a job cannot do without (its claim, its final status)."""
    deadline = time.monotonic() + REDIS_OUTAGE_GRACE_SECONDS
    while True:
        try:
            return call()
        except RedisError as error:
            if time.monotonic() > deadline:
                raise
            logger.warning("job %s: cannot %s yet, Redis unavailable (retrying): %s", job_id, what, error)
            time.sleep(REDIS_RETRY_SECONDS)


class TaskOutcome(StrEnum):
    """How a delivery of the task ended: the "status" of what it returns (and logs). Where it ran the
    job, the job's final status; otherwise why it did not, or that it stopped without one."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    HANDED_BACK = "handed_back"  # hand_back ran: the task then requeues its message
    ABANDONED = "abandoned"  # another worker took the job over (the lease was lost): nothing written
    REFUSED = "refused"  # not a job id
    # Not run, as the claim said (ClaimOutcome): no record, finished already, or a live worker runs it.
    MISSING = "missing"
    FINISHED = "finished"
    LEASED = "leased"


def hand_back(
    store: JobStore,
    job_id: str,
    worker: str,
    steps: int,
    image: np.ndarray,
    save_checkpoint: Callable[[int, np.ndarray], None],
) -> dict[str, Any]:
    """The worker is shutting down mid-job: save a checkpoint of the image after `steps` steps, then
    release the job (JobStore.release: its lease lapses now, no attempt is counted). The caller then
    puts the job's message back at the front of its queue (requeue_handed_back) for another worker."""
    if steps > 0:
        save_checkpoint(steps, image)
    released = patiently(job_id, "hand the job back", lambda: store.release(job_id, worker))
    if released:
        logger.warning("job %s: worker %s is shutting down; handed back at step %d", job_id, worker, steps)
    else:
        logger.warning("job %s: worker %s is shutting down and no longer holds the job", job_id, worker)
    return {"status": TaskOutcome.HANDED_BACK, "step": steps}


def requeue_handed_back(store: JobStore, job_id: str) -> Exception:
    """What the task raises after hand_back: its message goes back to the *front* of its queue.

    worker/broker.py: requeue_first moves it (the task id is the job id), then Celery's Ignore
    acknowledges the old delivery. Where that cannot be done (Redis unreachable, a message shape it
    does not know), kombu's own reject requeues it at the back of the queue instead: later, but never
    lost.
    """
    from celery.exceptions import Ignore, Reject

    try:
        if requeue_first(store.redis, job_id):  # the broker is the job store's Redis
            return Ignore()
    except RedisError as error:
        logger.warning("job %s: cannot put its message back at the front of the queue: %s", job_id, error)
    return Reject(f"job {job_id}: worker shutting down, job handed back", requeue=True)
