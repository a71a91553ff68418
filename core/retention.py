"""Retention: finished jobs and their files go away after ATELIER_JOB_TTL_SECONDS, or at once on DELETE.

Redis expires a finished job's record by itself (JobStore.finish sets the TTL); storage has no TTL,
so cleanup() deletes the files of those jobs, and forgets workers that have been silent for a day.
Every worker runs cleanup() every ATELIER_CLEANUP_INTERVAL_SECONDS (worker/celery_app.py);
`atelier-cleanup` (or `python -m core.retention`) runs one pass, e.g. from cron when no worker runs.
No FastAPI import: the worker uses this module too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.jobs import JobStore, get_job_store
from core.settings import get_settings
from core.storage import Storage, get_storage

logger = logging.getLogger(__name__)

WORKER_FORGET_SECONDS = 24 * 3600  # /readyz stops listing a worker silent this long
# A running job whose lease lapsed longer ago than the visibility timeout plus this margin (kombu's
# sweep for unacknowledged messages runs at most every minute) will not be redelivered: it is failed.
ABANDON_MARGIN_SECONDS = 120.0
ABANDONED_ERROR = (
    "its worker stopped (crashed, or was killed at the hard time limit) and no worker resumed it; "
    "submit it again, perhaps smaller or with fewer iterations"
)


@dataclass(frozen=True)
class CleanupReport:
    expired_jobs: list[str]  # jobs whose files were deleted
    failed_jobs: list[str]  # jobs whose files could not be deleted (logged; tried again next pass)
    forgotten_workers: list[str]
    abandoned_jobs: list[str]  # running jobs whose worker died for good: now failed


def delete_job(job_id: str, store: JobStore | None = None, storage: Storage | None = None) -> None:
    """Remove a job now: its files first, then its Redis keys, so no record outlives its images.

    The caller makes sure no worker runs it (DELETE refuses running jobs). Raises on failure; running
    it again finishes the job (both steps accept what is already gone).
    """
    (storage or get_storage()).delete_job(job_id)
    (store or get_job_store()).delete(job_id)
    logger.info("job %s: deleted (record and files)", job_id)


def cleanup(
    store: JobStore | None = None, storage: Storage | None = None, abandon_after: float | None = None
) -> CleanupReport:
    """One retention pass: fail running jobs abandoned for abandon_after seconds (default: the visibility
    timeout + ABANDON_MARGIN_SECONDS), then delete the files of every job whose record has expired."""
    store, storage = store or get_job_store(), storage or get_storage()
    if abandon_after is None:
        abandon_after = get_settings().broker_visibility_timeout + ABANDON_MARGIN_SECONDS
    abandoned = store.fail_abandoned(abandon_after, ABANDONED_ERROR)
    for job_id in abandoned:
        logger.error("job %s: failed, %s", job_id, ABANDONED_ERROR)
    expired: list[str] = []
    failed: list[str] = []
    while batch := store.take_expired_job_ids():
        for job_id in batch:
            try:
                storage.delete_job(job_id)
            except Exception:
                logger.exception("job %s: expired, but its files could not be deleted", job_id)
                store.mark_for_cleanup(job_id)  # tried again on the next pass
                failed.append(job_id)
                continue
            logger.info("job %s: expired, files deleted", job_id)
            expired.append(job_id)
        if failed:  # the store hands those out again at once: leave them for the next pass
            break
    forgotten = store.forget_workers(WORKER_FORGET_SECONDS)
    return CleanupReport(
        expired_jobs=expired, failed_jobs=failed, forgotten_workers=forgotten, abandoned_jobs=abandoned
    )


def main() -> None:
    """`atelier-cleanup`: one retention pass with the settings from the environment."""
    from core.logs import configure_logging

    configure_logging(get_settings().log_level)
    report = cleanup()
    logger.info(
        "cleanup: %d expired job(s) deleted, %d failed, %d silent worker(s) forgotten, %d abandoned job(s)",
        len(report.expired_jobs),
        len(report.failed_jobs),
        len(report.forgotten_workers),
        len(report.abandoned_jobs),
    )
    if report.failed_jobs:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
