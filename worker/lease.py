"""Leases a live worker renews: its running job's (JobLease) and its messages' (MessageLease).

The job lease (JobStore.claim / renew_lease) is how a redelivered job tells a crashed worker from a
live one: a worker that dies stops renewing, its lease lapses after ATELIER_JOB_LEASE_SECONDS and the
next delivery resumes the job. A thread (not the engine's step callback) renews it, so one slow step or
a long model load cannot make a live job look dead.

The message lease is what gets a dead worker's jobs redelivered at all, within the same lease: kombu
requeues an unacknowledged message once it has been unacknowledged for the visibility timeout, which
is ATELIER_JOB_LEASE_SECONDS (worker/celery_app.py); MessageLease, a thread of each worker's main
process, keeps resetting that clock for every message the worker holds (running or reserved), so only
a dead worker's messages ever age. See docs/reliability.md.

Preemption: when the worker is told to stop (SIGTERM: docker stop, a scale-down, a spot notice),
``request_preemption`` runs in its main process; running jobs see JobLease.preempted turn True (in a
prefork pool process through the job store's per-worker stopping flag), checkpoint, hand the job back
(JobStore.release) and requeue their message, so another worker continues them at once.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

from redis.exceptions import RedisError

from core.jobs import JobStore
from worker.broker import renew_messages

logger = logging.getLogger(__name__)

OUTAGE_RETRY_SECONDS = 1.0  # while Redis is down, try to renew this often (it is back in one go)
STOPPING_CHECK_SECONDS = 0.5  # how often a running job looks for its worker's stopping flag

# Set in a worker's main process when it starts shutting down (request_preemption). A solo-pool job
# runs in that process and sees it at once; prefork pool processes see the job store's flag instead.
_preempted = threading.Event()


def request_preemption(store: JobStore, hostname: str) -> None:
    """The worker is shutting down: ask its running jobs to checkpoint and hand themselves back.

    Called from Celery's signal handler: only sets an event and starts a thread for the Redis write,
    because the interrupted main thread may hold the Redis connection pool's lock.
    """
    _preempted.set()

    def announce() -> None:
        for _ in range(10):
            try:
                store.set_worker_stopping(hostname)
                return
            except RedisError as error:
                logger.warning("worker %s: cannot announce its shutdown yet: %s", hostname, error)
                time.sleep(OUTAGE_RETRY_SECONDS)

    threading.Thread(target=announce, name="atelier-preempt", daemon=True).start()


class JobLease:
    """Context manager: renews the lease every third of its length until the block ends.

    ``lost`` turns True when the store says this worker no longer holds the lease (the job was
    finished, deleted or taken over); the task then stops without writing anything. ``preempted``
    turns True when the worker is shutting down (request_preemption); the task then checkpoints and
    hands the job back.
    """

    def __init__(self, store: JobStore, job_id: str, worker: str, seconds: float) -> None:
        self.store = store
        self.job_id = job_id
        self.worker = worker
        self.seconds = seconds
        self.lost = False
        self._stopping_seen = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_until_stopped, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> JobLease:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def preempted(self) -> bool:
        """Whether this job's worker is shutting down (so the job should hand itself back)."""
        return _preempted.is_set() or self._stopping_seen

    def _renew_until_stopped(self) -> None:
        period = self.seconds / 3
        next_renewal = time.monotonic() + period
        while not self._stop.wait(min(STOPPING_CHECK_SECONDS, max(0.0, next_renewal - time.monotonic()))):
            try:
                if not self._stopping_seen and not _preempted.is_set():
                    self._stopping_seen = self.store.worker_stopping(self.worker)
                if time.monotonic() < next_renewal:
                    continue
                held = self.store.renew_lease(self.job_id, self.worker, self.seconds)
            except RedisError as error:
                logger.warning("job %s: lease not renewed, Redis unavailable: %s", self.job_id, error)
                next_renewal = time.monotonic() + min(OUTAGE_RETRY_SECONDS, period)
                continue
            next_renewal = time.monotonic() + period
            if not held:
                logger.warning(
                    "job %s: %s no longer holds the job's lease; stopping", self.job_id, self.worker
                )
                self.lost = True
                return


class MessageLease:
    """A thread of the worker's main process: every third of the visibility timeout, it marks every
    message this worker holds (running, or reserved and waiting) as just delivered in kombu's unacked
    index (worker/broker.py), so kombu's restore_visible (run by every idle worker) only requeues a
    dead worker's. The broker is the job store's Redis (settings.redis_url)."""

    def __init__(self, store: JobStore, visibility_seconds: float) -> None:
        self.store = store
        self.period = visibility_seconds / 3
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._renew_until_stopped, name="atelier-messages", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.period):
            try:
                renew_messages(self.store.redis, held_delivery_tags())
            except RedisError as error:
                logger.warning("messages not renewed, Redis unavailable: %s", error)


def held_delivery_tags() -> list[str]:
    """The delivery tags of the messages this worker process holds (Celery's reserved and active
    requests); empty outside a worker's main process."""
    from celery.worker import state

    # list() of a dict's values is one C call under the GIL: safe while the consumer thread adds and
    # removes requests.
    requests = list(state.requests.values())
    tags = (getattr(getattr(request, "message", None), "delivery_tag", None) for request in requests)
    return [str(tag) for tag in tags if tag]
