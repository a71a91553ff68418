"""Creating a job: the one code path the JSON API (POST /api/jobs) and the HTML form (POST /jobs) share.

Usage from an async route (submit_job is a coroutine; the slow parts run in a thread pool):

    from app.submission import SubmissionError, options_from_form, submit_job

    try:
        options = options_from_form(form_fields)          # or a JobOptionsIn built by FastAPI
        record = await submit_job(content, styles, options)
    except SubmissionError as error:
        ...  # error.status_code (400/413/415/422/503), error.detail (for people), error.field (or None)
    # record.id, record.status ("queued"); the job's page is /jobs/{record.id}
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import UploadFile
from pydantic import ValidationError
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from app.jobs import JobRecord, get_job_store, new_job_id
from app.options import JobOptionsIn
from app.queue import enqueue
from app.settings import get_settings
from app.storage import content_key, get_storage, style_key
from app.uploads import CleanImage, UploadRejected, clean_image, read_limited

logger = logging.getLogger(__name__)


class SubmissionError(Exception):
    """A job could not be created; nothing was queued and nothing stays written.

    status_code: the HTTP status that fits (400 bad request, 413 too large, 415 not an image,
    422 invalid option or image, 503 Redis or the broker unavailable); detail: a sentence a person can
    act on; field: the form field at fault ("content", "style", an option name) or None.
    """

    def __init__(self, status_code: int, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.field = field


def options_from_form(fields: Mapping[str, Any]) -> JobOptionsIn:
    """Build JobOptionsIn from raw form fields (strings; empty strings mean "not given").

    Unknown field names are ignored here (the page's form may carry extra inputs such as a CSRF
    token); a value out of range raises SubmissionError(422, "<field>: <what is wrong>", field).
    """
    known = {name: value for name, value in fields.items() if name in JobOptionsIn.model_fields}
    try:
        return JobOptionsIn.model_validate(known)
    except ValidationError as error:
        raise submission_error_from_validation(error) from error


def submission_error_from_validation(error: ValidationError) -> SubmissionError:
    """The first problem of a pydantic ValidationError as a readable 422 SubmissionError."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first.get("loc", ()) if not isinstance(part, int)) or None
    message = first.get("msg", "invalid value").removeprefix("Value error, ")
    return SubmissionError(422, f"{field}: {message}" if field else message, field)


async def submit_job(
    content: UploadFile | None, styles: list[UploadFile], options: JobOptionsIn
) -> JobRecord:
    """Validate the uploads and options, store the images, create the job record and enqueue it.

    content: the content image upload; styles: one or more style image uploads (at most
    ATELIER_MAX_STYLE_IMAGES); options: validated JobOptionsIn (size/iterations ranges are already
    checked; style_blend is checked against the number of styles here).

    Order: everything is validated first (nothing written for bad input), then the images are
    written to storage, then the job record is created, then the job is sent to the Celery queue.
    If any step fails, whatever was written is removed and SubmissionError is raised.
    Returns the new JobRecord (status "queued").
    """
    settings = get_settings()
    styles = [style for style in styles if _was_sent(style)]
    if content is None or not _was_sent(content):
        raise SubmissionError(422, "content: a content image is required", "content")
    if not styles:
        raise SubmissionError(422, "style: at least one style image is required", "style")
    if len(styles) > settings.max_style_images:
        raise SubmissionError(
            422,
            f"style: at most {settings.max_style_images} style images are accepted, not {len(styles)}",
            "style",
        )
    try:
        resolved = options.resolve(style_count=len(styles))
    except ValueError as error:
        raise SubmissionError(422, f"style_blend: {error}", "style_blend") from error

    content_image = await _clean_upload(content, "content")
    style_images = [await _clean_upload(style, "style") for style in styles]
    return await run_in_threadpool(_store_and_enqueue, content_image, style_images, resolved)


def _was_sent(upload: UploadFile | None) -> bool:
    # Browsers send an empty part with no file name for an untouched file input.
    return upload is not None and not (upload.filename == "" and upload.size == 0)


async def _clean_upload(upload: UploadFile, field: str) -> CleanImage:
    settings = get_settings()
    try:
        data = await read_limited(upload, settings.max_upload_bytes)
        # Decoding can take a while for large images: keep it off the event loop.
        return await run_in_threadpool(
            clean_image, data, max_pixels=settings.max_upload_pixels, min_side=settings.min_image_side
        )
    except UploadRejected as error:
        raise SubmissionError(error.status_code, f"{field}: {error.detail}", field) from error


def _store_and_enqueue(content: CleanImage, styles: list[CleanImage], options: dict[str, Any]) -> JobRecord:
    job_id = new_job_id()
    storage = get_storage()
    store = get_job_store()
    stage = "storing the images"
    try:
        storage.write_bytes(content_key(job_id), content.png)
        for index, style in enumerate(styles):
            storage.write_bytes(style_key(job_id, index), style.png)
        stage = "creating the job record"
        record = store.create(job_id, options, style_count=len(styles))
        stage = "sending the job to the queue"
        enqueue(job_id)
    except Exception as error:
        logger.exception("job %s: submission failed while %s; removing what was written", job_id, stage)
        _undo(job_id)
        unavailable = isinstance(error, RedisError | OSError) or stage.startswith("send")
        status = 503 if unavailable else 500
        raise SubmissionError(status, f"the job could not be created: failure while {stage}") from error
    logger.info(
        "job %s: queued (%dx%d content, %d style(s), size %s, %s iterations)",
        job_id,
        content.width,
        content.height,
        len(styles),
        options["size"],
        options["iterations"],
    )
    return record


def _undo(job_id: str) -> None:
    """Best effort removal of a half-created job; each failure is logged, the first error stays raised."""
    for undo in (get_job_store().delete, get_storage().delete_job):
        try:
            undo(job_id)
        except Exception:
            logger.exception("job %s: could not undo part of a failed submission", job_id)
