"""A running job's lease: renewed from a background thread while the job runs on this worker.

The lease (JobStore.claim / renew_lease) is how a redelivered job tells a crashed worker from a live
one: a worker that dies stops renewing, its lease lapses after ATELIER_JOB_LEASE_SECONDS and the next
delivery resumes the job. A thread (not the engine's step callback) renews it, so one slow step or a
long model load cannot make a live job look dead.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from redis.exceptions import RedisError

from core.jobs import JobStore

logger = logging.getLogger(__name__)

OUTAGE_RETRY_SECONDS = 1.0  # while Redis is down, try to renew this often (it is back in one go)


class JobLease:
    """Context manager: renews the lease every third of its length until the block ends.

    ``lost`` turns True when the store says this worker no longer holds the lease (the job was
    finished, deleted or taken over); the task then stops without writing anything.
    """

    def __init__(self, store: JobStore, job_id: str, worker: str, seconds: float) -> None:
        self.store = store
        self.job_id = job_id
        self.worker = worker
        self.seconds = seconds
        self.lost = False
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

    def _renew_until_stopped(self) -> None:
        wait = self.seconds / 3
        while not self._stop.wait(wait):
            try:
                held = self.store.renew_lease(self.job_id, self.worker, self.seconds)
            except RedisError as error:
                logger.warning("job %s: lease not renewed, Redis unavailable: %s", self.job_id, error)
                wait = min(OUTAGE_RETRY_SECONDS, self.seconds / 3)
                continue
            wait = self.seconds / 3
            if not held:
                logger.warning(
                    "job %s: %s no longer holds the job's lease; stopping", self.job_id, self.worker
                )
                self.lost = True
                return
