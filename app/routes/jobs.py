"""The JSON API of jobs: submit, status, images, cancel."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Path, Request, Response, UploadFile

from app.jobs import JobRecord, get_job_store, is_job_id
from app.options import JobOptionsIn
from app.schemas import ErrorOut, JobCreatedOut, JobStatusOut
from app.status import job_urls, public_status
from app.storage import content_key, get_storage, preview_key, result_key
from app.submission import SubmissionError, submit_job

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/jobs", tags=["jobs"])

JobId = Annotated[str, Path(description="Job id: 32 hexadecimal characters, as POST /api/jobs returned it.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {
        "model": ErrorOut,
        "description": "No such job (unknown, expired or malformed id), or no such image yet.",
    }
}


def load_job(job_id: str) -> JobRecord:
    """The job, or 404: malformed ids are refused before they reach Redis or storage."""
    record = get_job_store().get(job_id) if is_job_id(job_id) else None
    if record is None:
        raise HTTPException(status_code=404, detail="job not found")
    return record


@router.post(
    "",
    status_code=202,
    response_model=JobCreatedOut,
    summary="Submit a style transfer job",
    responses={
        400: {"model": ErrorOut, "description": "An uploaded file is empty."},
        413: {"model": ErrorOut, "description": "An upload exceeds the byte or pixel limit."},
        415: {"model": ErrorOut, "description": "An upload is not an image this service reads."},
        422: {
            "model": ErrorOut,
            "description": "A missing image, a corrupt image or an option out of range.",
        },
        503: {"model": ErrorOut, "description": "Redis, storage or the queue is unavailable."},
    },
)
async def create_job(
    request: Request,
    options: Annotated[JobOptionsIn, Form()],
    content: Annotated[
        UploadFile | None, File(description="The content image (PNG, JPEG, WebP, ...).")
    ] = None,
    style: Annotated[
        list[UploadFile] | None, File(description="One or more style images; repeat the field for several.")
    ] = None,
) -> dict[str, str]:
    """Upload a content image and one or more style images; the job is queued and runs on a worker.

    Options may be left out: the preset (default quick) fills size and iterations, the engine's
    defaults fill the weights.
    """
    form = await request.form()  # already parsed by FastAPI; cached on the request
    unknown = sorted(set(form.keys()) - set(JobOptionsIn.model_fields) - {"content", "style"})
    if unknown:
        raise HTTPException(status_code=422, detail=f"unknown field(s): {', '.join(unknown)}")
    try:
        record = await submit_job(content, style or [], options)
    except SubmissionError as error:
        logger.info("submission refused (%d): %s", error.status_code, error.detail)
        raise HTTPException(status_code=error.status_code, detail=error.detail) from error
    urls = job_urls(record.id)
    return {
        "id": record.id,
        "status": record.status,
        "status_url": urls["status_url"],
        "page_url": urls["page_url"],
    }


@router.get("/{job_id}", response_model=JobStatusOut, summary="A job's status", responses=NOT_FOUND)
def get_job(job_id: JobId) -> dict[str, Any]:
    return public_status(load_job(job_id), get_job_store())


def _image(key: str, media_type: str, what: str, cache: str) -> Response:
    try:
        data = get_storage().read_bytes(key)
    except FileNotFoundError as error:
        raise HTTPException(status_code=404, detail=f"this job has no {what}") from error
    return Response(content=data, media_type=media_type, headers={"Cache-Control": cache})


@router.get(
    "/{job_id}/result",
    summary="The result image (PNG)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **NOT_FOUND},
)
def get_result(job_id: JobId) -> Response:
    record = load_job(job_id)
    if not record.has_result:
        raise HTTPException(status_code=404, detail=f"this job has no result (status {record.status})")
    response = _image(result_key(job_id), "image/png", "result", "private, max-age=3600")
    response.headers["Content-Disposition"] = f'inline; filename="atelier-{job_id}.png"'
    return response


@router.get(
    "/{job_id}/preview",
    summary="The latest live preview (JPEG)",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **NOT_FOUND},
)
def get_preview(job_id: JobId) -> Response:
    load_job(job_id)
    return _image(preview_key(job_id), "image/jpeg", "preview yet", "no-cache")


@router.get(
    "/{job_id}/content",
    summary="The content image as stored (PNG)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **NOT_FOUND},
)
def get_content(job_id: JobId) -> Response:
    load_job(job_id)
    return _image(content_key(job_id), "image/png", "content image", "private, max-age=3600")


@router.post(
    "/{job_id}/cancel",
    response_model=JobStatusOut,
    summary="Cancel a job",
    responses={**NOT_FOUND, 409: {"model": ErrorOut, "description": "The job has already finished."}},
)
def cancel_job(job_id: JobId) -> dict[str, Any]:
    """A queued job is cancelled at once and never runs; a running job stops within a step or two
    (its status turns to cancelled when the worker has stopped)."""
    load_job(job_id)
    store = get_job_store()
    previous = store.request_cancel(job_id)
    if previous is None:
        raise HTTPException(status_code=404, detail="job not found")
    if previous not in ("queued", "running"):
        raise HTTPException(status_code=409, detail=f"the job has already finished ({previous})")
    logger.info("job %s: cancel requested while %s", job_id, previous)
    return public_status(load_job(job_id), store)
