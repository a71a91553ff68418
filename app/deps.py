"""Dependencies the routes share, as Annotated aliases: the job store and the storage, the job named
in the URL (404 otherwise) and the same job when the request carries its submitter's token (403
otherwise).

    def cancel_job(job: SubmittersJob, store: JobStoreDep) -> ...  # 404, then 403, before it runs
        previous = request_cancel(job, store)  # the one cancel flow of the API and the pages

The API answers them as JSON, the pages as HTML pages (app.errors, app.main's handlers). Tests may
replace the store or the storage with app.dependency_overrides[get_job_store] (or get_storage).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request

from app.errors import JOB_NOT_FOUND, NOT_THE_SUBMITTER
from app.job_tokens import request_holds_token
from app.queue import announce_finished
from core.jobs import JobRecord, JobStore, get_job_store, is_job_id
from core.storage import Storage, get_storage

logger = logging.getLogger(__name__)

# The process-wide job store (Redis) and storage (a directory or S3), built from the settings.
JobStoreDep = Annotated[JobStore, Depends(get_job_store)]
StorageDep = Annotated[Storage, Depends(get_storage)]

JobId = Annotated[str, Path(description="Job id: 32 hexadecimal characters, as POST /api/jobs returned it.")]


def job_store_for(request: Request) -> JobStore:
    """The job store for code outside a route's dependencies (an exception handler's page), honouring
    the tests' dependency_overrides like JobStoreDep does."""
    return request.app.dependency_overrides.get(get_job_store, get_job_store)()


def job_in_url(job_id: JobId, store: JobStoreDep) -> JobRecord:
    """The job, or 404: malformed ids are refused before they reach Redis or storage."""
    record = store.get(job_id) if is_job_id(job_id) else None
    if record is None:
        raise HTTPException(status_code=404, detail=JOB_NOT_FOUND)
    return record


ExistingJob = Annotated[JobRecord, Depends(job_in_url)]


def submitters_job(request: Request, job: ExistingJob, store: JobStoreDep) -> JobRecord:
    """The job, when the request carries the token returned when it was submitted (header, bearer or
    the cookie the submitting browser got); 403 otherwise."""
    if not request_holds_token(request, store.token_hash(job.id)):
        raise HTTPException(status_code=403, detail=NOT_THE_SUBMITTER)
    return job


SubmittersJob = Annotated[JobRecord, Depends(submitters_job)]


def request_cancel(job: JobRecord, store: JobStore) -> str:
    """Cancel the job for its submitter (the API's cancel and the page's Cancel button): a queued job
    is cancelled at once, a running one is asked to stop. Returns the status it had before (a
    finished job is left as it is); 404 when it vanished in between."""
    previous = store.request_cancel(job.id)
    if previous is None:
        raise HTTPException(status_code=404, detail=JOB_NOT_FOUND)
    logger.info("job %s: cancel requested while %s", job.id, previous)
    if previous == "queued":  # cancelled now, by the web: no worker will announce it
        announce_finished(store, job.id)
    return previous
