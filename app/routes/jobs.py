"""The JSON API of jobs: submit, status, images, cancel, delete.

Cancel and delete need the job's token (app/job_tokens.py): 404 for an unknown id comes first, then
403 when the request does not carry the token.
"""

from __future__ import annotations

import io
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Header, HTTPException, Query, Request, Response, UploadFile
from PIL import Image

from app import idempotency
from app.deps import ExistingJob, JobStoreDep, StorageDep, SubmittersJob, job_in_url, request_cancel
from app.forms import strict_form_options
from app.job_tokens import set_job_token_cookies
from app.schemas import ErrorOut, JobCreatedOut
from app.status import JobStatusOut, job_urls, public_status
from app.submission import (
    CONTENT_EXAMPLE_FIELD,
    STYLE_ID_FIELD,
    client_address,
    content_source,
    styles_in_form_order,
    submit_job,
)
from app.uploads import ACCEPTED_NAMES
from app.webhooks import checked_callback
from core import retention
from core.jobs import FINISHED
from core.settings import get_settings
from core.storage import Storage, content_key, preview_key, result_key

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/jobs", tags=["jobs"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {
        "model": ErrorOut,
        "description": "No such job (unknown, expired or malformed id), or no such image yet.",
    }
}


FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {
        "model": ErrorOut,
        "description": "The request does not carry the job's token (X-Job-Token, Authorization: Bearer "
        "or the cookie set at submission).",
    }
}


# The form's parts that are images, not options: create_job's File parameters and the library's ids.
IMAGE_FIELDS = frozenset({"content", "style", "mask", STYLE_ID_FIELD, CONTENT_EXAMPLE_FIELD})
# The form's fields that are not options (create_job's other Form parameters).
SUBMISSION_FIELDS = frozenset({"callback_url"})


# JobOptionsIn that refuses unknown fields; the same name in the OpenAPI schema.
JobFormOptions = strict_form_options(
    "JobOptionsIn",
    "Options of a new job, as sent in the multipart form of POST /api/jobs. A field that is neither an "
    'option nor one of the images, library ids or callback_url is refused (422, "unknown field(s): ...").',
    IMAGE_FIELDS | SUBMISSION_FIELDS,
)


@router.post(
    "",
    status_code=202,
    response_model=JobCreatedOut,
    summary="Submit a style transfer job",
    responses={
        200: {
            "model": JobCreatedOut,
            "description": "The job an earlier request with this Idempotency-Key created (Idempotent-"
            "Replayed: true); its current status.",
        },
        400: {"model": ErrorOut, "description": "An uploaded file is empty."},
        409: {
            "model": ErrorOut,
            "description": "A request with this Idempotency-Key is still being processed (Retry-After).",
        },
        413: {"model": ErrorOut, "description": "An upload exceeds the byte or pixel limit."},
        415: {"model": ErrorOut, "description": "An upload is not an image this service reads."},
        422: {
            "model": ErrorOut,
            "description": "A missing image, a corrupt image, an unknown style_id or content_example "
            "(named in the detail), an option out of range, masks that do not fit (not one per style, "
            "another aspect ratio than the content's, all black), a callback_url that may not be "
            "called, or an Idempotency-Key used for another request.",
        },
        429: {
            "model": ErrorOut,
            "description": "Too many submissions from this client this minute (see Retry-After).",
        },
        503: {
            "model": ErrorOut,
            "description": "Redis, storage or the broker is unavailable, or the queue is full "
            "(see Retry-After).",
        },
    },
)
async def create_job(
    request: Request,
    response: Response,
    store: JobStoreDep,
    storage: StorageDep,
    options: Annotated[JobFormOptions, Form()],
    content: Annotated[UploadFile | None, File(description=f"The content image ({ACCEPTED_NAMES}).")] = None,
    style: Annotated[
        list[UploadFile] | None, File(description="One or more style images; repeat the field for several.")
    ] = None,
    style_id: Annotated[
        list[str] | None,
        Form(
            description="Library paintings by id (GET /api/styles), repeatable, beside or instead of "
            "uploaded styles. The job's style images are the `style` and `style_id` parts in the order "
            "they appear in the form; `style_blend` weights and `mask` parts follow that order. An "
            "unknown id is a 422 naming it."
        ),
    ] = None,
    content_example: Annotated[
        str | None,
        Form(description="An example photo by id (GET /api/examples) as the content, instead of `content`."),
    ] = None,
    mask: Annotated[
        list[UploadFile] | None,
        File(
            description="Masks: none, or one per style image in the same order (an empty part for a "
            "style without one). Greyscale, white where that style goes; where no mask is white the "
            "content is kept. The content's aspect ratio (within 1%); another size is resized."
        ),
    ] = None,
    callback_url: Annotated[
        str | None,
        Form(
            description="An http(s) URL that gets the job's signed event (POST, JSON) when it finishes "
            "(docs/api.md, Webhooks); refused (422) when it resolves to a non-public address."
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=idempotency.HEADER,
            description="Any unique string (a UUID) per job: a retry with the same key and request "
            "returns the same job instead of creating another.",
        ),
    ] = None,
) -> dict[str, str]:
    """Upload a content image and one or more style images; the job is queued and runs on a worker.

    Styles may come from the library by id (`style_id`) and the content from the example photos
    (`content_example`), so a job needs no upload at all.

    Options may be left out: the preset (default quick) fills size and iterations, the engine's
    defaults fill the weights. The response's `token` is shown only once: cancel and delete need it.

    With an `Idempotency-Key` header, a retry of the same request answers 200 with the job the first
    one created (header `Idempotent-Replayed: true`); the same key with another request is a 422.
    """
    # FastAPI has parsed the form already (request.form() is that same form): its parts' order is
    # the styles' order, uploads and library paintings interleaved as the client sent them.
    styles = styles_in_form_order((await request.form()).multi_items())
    callback = await checked_callback(callback_url, request)
    job, replayed = await idempotency.once(
        request,
        store,
        idempotency_key,
        lambda: submit_job(
            content_source(content, content_example),
            styles,
            options,
            mask or [],
            store=store,
            storage=storage,
            callback=callback,
            submitter=client_address(request),
        ),
    )
    if replayed:  # the job an earlier request with this Idempotency-Key created
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    # A browser script that submits here gets the same cookies as the HTML form's submitter.
    set_job_token_cookies(response, request, job.id, job.token, get_settings().job_ttl_seconds)
    urls = job_urls(job.id)
    return {
        "id": job.id,
        "status": job.record.status,
        "token": job.token,
        "status_url": urls["status_url"],
        "page_url": urls["page_url"],
    }


@router.get("/{job_id}", response_model=JobStatusOut, summary="A job's status", responses=NOT_FOUND)
def get_job(job: ExistingJob, store: JobStoreDep) -> dict[str, Any]:
    return public_status(job, store)


def _image(storage: Storage, key: str, media_type: str, what: str, cache: str) -> Response:
    try:
        data = storage.read_bytes(key)
    except FileNotFoundError as error:
        raise HTTPException(status_code=404, detail=f"this job has no {what}") from error
    return Response(content=data, media_type=media_type, headers={"Cache-Control": cache})


RESULT_JPEG_QUALITY = 92  # high enough for prints; far fewer bytes than the PNG of a photo-like picture


@router.get(
    "/{job_id}/result",
    summary="The result image (PNG, or JPEG with ?format=jpeg)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}, **NOT_FOUND},
)
def get_result(
    job: ExistingJob,
    storage: StorageDep,
    format: Annotated[
        Literal["png", "jpeg"],
        Query(description="png (default, lossless, as stored) or jpeg (quality 92, far smaller for prints)."),
    ] = "png",
) -> Response:
    if not job.has_result:
        raise HTTPException(status_code=404, detail=f"this job has no result (status {job.status})")
    response = _image(storage, result_key(job.id), "image/png", "result", "private, max-age=3600")
    if format == "jpeg":  # the stored PNG re-encoded (a sync route: FastAPI runs it in a thread)
        response = Response(
            _jpeg(bytes(response.body)),
            media_type="image/jpeg",
            headers={"Cache-Control": "private, max-age=3600"},
        )
    extension = "jpg" if format == "jpeg" else "png"
    response.headers["Content-Disposition"] = f'inline; filename="atelier-{job.id}.{extension}"'
    return response


def _jpeg(png: bytes) -> bytes:
    with Image.open(io.BytesIO(png)) as image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=RESULT_JPEG_QUALITY)
    return buffer.getvalue()


@router.get(
    "/{job_id}/preview",
    summary="The latest live preview (JPEG)",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **NOT_FOUND},
)
def get_preview(job: ExistingJob, storage: StorageDep) -> Response:
    return _image(storage, preview_key(job.id), "image/jpeg", "preview yet", "no-cache")


@router.get(
    "/{job_id}/content",
    summary="The content image as stored (PNG)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **NOT_FOUND},
)
def get_content(job: ExistingJob, storage: StorageDep) -> Response:
    return _image(storage, content_key(job.id), "image/png", "content image", "private, max-age=3600")


@router.post(
    "/{job_id}/cancel",
    response_model=JobStatusOut,
    summary="Cancel a job",
    responses={
        **NOT_FOUND,
        **FORBIDDEN,
        409: {"model": ErrorOut, "description": "The job has already finished."},
    },
)
def cancel_job(job: SubmittersJob, store: JobStoreDep) -> dict[str, Any]:
    """A queued job is cancelled at once and never runs; a running job stops within a step or two
    (its status turns to cancelled when the worker has stopped). Needs the job's token."""
    previous = request_cancel(job, store)
    if previous in FINISHED:
        raise HTTPException(status_code=409, detail=f"the job has already finished ({previous})")
    return public_status(job_in_url(job.id, store), store)


@router.delete(
    "/{job_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a job and its images now",
    responses={
        **NOT_FOUND,
        **FORBIDDEN,
        409: {"model": ErrorOut, "description": "The job is running: cancel it first."},
    },
)
def delete_job(job: SubmittersJob, store: JobStoreDep, storage: StorageDep) -> Response:
    """Remove the job's record and every stored image at once (a queued job is cancelled first; a
    running one must be cancelled and stopped before). Needs the job's token."""
    job_id, record = job.id, job
    if record.status == "queued" and store.request_cancel(job_id) == "running":
        record = job_in_url(job_id, store)  # a worker took it in between
    if record.status == "running":
        raise HTTPException(
            status_code=409, detail="the job is running: cancel it, then delete it once it has stopped"
        )
    retention.delete_job(job_id, store, storage)  # files first, then the record
    logger.info("job %s: deleted by its submitter", job_id)
    return Response(status_code=204)
