"""Batches of jobs: submit (content × style), status (JSON and SSE), cancel, a ZIP of the results, and
the contact-sheet page. The batch's jobs are ordinary jobs (app/routes/jobs.py serves each one).

Cancel needs the batch's token (returned once at submission, also set as a cookie for the batch's
paths and every job's), as a job's cancel needs the job's.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, HTTPException, Path, Request, Response, UploadFile
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app import idempotency
from app.batch_status import BatchStatusOut, batch_status, batch_urls
from app.batches import SubmittedBatch, batch_store, submit_batch
from app.deps import JobStoreDep, StorageDep
from app.errors import NOT_THE_SUBMITTER
from app.forms import strict_form_options
from app.job_tokens import COOKIE_NAME, request_holds_token, set_job_token_cookies
from app.queue import announce_finished
from app.routes.events import HEARTBEAT_SECONDS, POLL_SECONDS, RETRY_MILLISECONDS
from app.schemas import ErrorOut
from app.submission import STYLE_ID_FIELD, client_address, styles_in_form_order
from app.templating import templates
from app.uploads import ACCEPTED_NAMES
from app.webhooks import checked_callback
from core.jobs import BatchRecord, JobStore
from core.settings import get_settings
from core.storage import Storage, result_key

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/batches", tags=["batches"])
page_router = APIRouter(tags=["pages"], include_in_schema=False)

BATCH_NOT_FOUND = "Batch not found"
BATCH_FIELDS = frozenset({"content", "style", STYLE_ID_FIELD, "pairs", "callback_url"})

BatchId = Annotated[
    str, Path(description="Batch id: 32 hexadecimal characters, as POST /api/batches returned it.")
]


BatchFormOptions = strict_form_options(
    "BatchOptionsIn",
    "Options of every job of a new batch (POST /api/batches): the same as a job's.",
    BATCH_FIELDS,
)


class BatchCreatedOut(BaseModel):
    id: str = Field(description="Batch id: 32 hexadecimal characters.")
    token: str = Field(description="Shown only here: cancels the batch (and each of its jobs).")
    jobs: list[str] = Field(description="Its jobs' ids, in grid order (content by content).")
    status_url: str
    page_url: str
    download_url: str


def batch_in_url(batch_id: BatchId, store: JobStoreDep) -> BatchRecord:
    record = batch_store(store).get(batch_id)
    if record is None:
        raise HTTPException(status_code=404, detail=BATCH_NOT_FOUND)
    return record


ExistingBatch = Annotated[BatchRecord, Depends(batch_in_url)]


def submitters_batch(request: Request, batch: ExistingBatch) -> BatchRecord:
    if not request_holds_token(request, batch.token_hash):
        raise HTTPException(status_code=403, detail=NOT_THE_SUBMITTER)
    return batch


SubmittersBatch = Annotated[BatchRecord, Depends(submitters_batch)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "No such batch."}}


@router.post(
    "",
    status_code=202,
    response_model=BatchCreatedOut,
    summary="Submit a batch: every content × style job",
    responses={
        200: {"model": BatchCreatedOut, "description": "The batch this Idempotency-Key created before."},
        400: {"model": ErrorOut, "description": "An uploaded file is empty."},
        409: {"model": ErrorOut, "description": "A request with this Idempotency-Key is in progress."},
        413: {"model": ErrorOut, "description": "An upload exceeds the byte or pixel limit."},
        415: {"model": ErrorOut, "description": "An upload is not an image this service reads."},
        422: {
            "model": ErrorOut,
            "description": "More jobs than ATELIER_MAX_BATCH_JOBS, a missing or corrupt image, a bad pair, "
            "an option out of range, a callback_url that may not be called, or a reused Idempotency-Key.",
        },
        429: {"model": ErrorOut, "description": "Too many submissions from this client this minute."},
        503: {
            "model": ErrorOut,
            "description": "Redis, storage or the broker is unavailable, or the queue is full.",
        },
    },
)
async def create_batch(
    request: Request,
    response: Response,
    store: JobStoreDep,
    storage: StorageDep,
    options: Annotated[BatchFormOptions, Form()],
    content: Annotated[
        list[UploadFile] | None,
        File(description=f"One or more content images ({ACCEPTED_NAMES}); repeat the field."),
    ] = None,
    style: Annotated[
        list[UploadFile] | None, File(description="One or more style images; repeat the field.")
    ] = None,
    style_id: Annotated[
        list[str] | None,
        Form(
            description="Library paintings by id (GET /api/styles), repeatable, beside or instead of "
            "uploaded styles: the batch's styles are the `style` and `style_id` parts in the order they "
            "appear (the order `pairs` counts them in). An unknown id is a 422 naming it."
        ),
    ] = None,
    pairs: Annotated[
        str | None,
        Form(
            description='Only these jobs: "content:style" pairs, 1-based, comma separated ("1:1,2:3"); '
            "default: every pair."
        ),
    ] = None,
    callback_url: Annotated[
        str | None, Form(description="Gets the batch's signed event once every job has ended (docs/api.md).")
    ] = None,
    idempotency_key: Annotated[
        str | None, Header(alias=idempotency.HEADER, description="As for POST /api/jobs.")
    ] = None,
) -> dict[str, Any]:
    """Every content × style pair (or the listed pairs) becomes an ordinary job with these options; a
    batch does not blend its styles. Its jobs queue fairly against other clients' jobs."""
    callback = await checked_callback(callback_url, request)
    styles = styles_in_form_order((await request.form()).multi_items())  # uploads and paintings, in order

    def replay(batch_id: str, token: str) -> SubmittedBatch | None:
        record = batch_store(store).get(batch_id)
        return None if record is None else SubmittedBatch(record, token)

    batch, replayed = await idempotency.once(
        request,
        store,
        idempotency_key,
        lambda: submit_batch(
            content or [],
            styles,
            options,
            pairs,
            store=store,
            storage=storage,
            submitter=client_address(request),
            callback=callback,
        ),
        replay,
    )
    if replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    _set_token_cookies(response, request, batch.record, batch.token)
    urls = batch_urls(batch.id)
    return {
        "id": batch.id,
        "token": batch.token,
        "jobs": list(batch.record.job_ids),
        "status_url": urls["status_url"],
        "page_url": urls["page_url"],
        "download_url": urls["download_url"],
    }


def _set_token_cookies(response: Response, request: Request, batch: BatchRecord, token: str) -> None:
    """The submitting browser may cancel the batch from its page, and each job from the job's page."""
    max_age = get_settings().job_ttl_seconds
    for path in (f"/batches/{batch.id}", f"/api/batches/{batch.id}"):
        response.set_cookie(
            COOKIE_NAME, token, max_age=max_age, path=path, secure=request.url.scheme == "https",
            httponly=True, samesite="strict",
        )  # fmt: skip
    for job_id in batch.job_ids:
        set_job_token_cookies(response, request, job_id, token, max_age)


@router.get("/{batch_id}", response_model=BatchStatusOut, summary="A batch's status", responses=NOT_FOUND)
def get_batch(batch: ExistingBatch, store: JobStoreDep) -> dict[str, Any]:
    return batch_status(batch, store)


@router.get(
    "/{batch_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {"description": "Each `data:` is the JSON of GET /api/batches/{id}, when it changes; "
              "`event: end` once every job has ended."},
        404: {"description": "No batch with this id (unknown, malformed or expired)."},
    },
)  # fmt: skip
async def batch_events(batch: ExistingBatch, store: JobStoreDep) -> AsyncIterator[ServerSentEvent]:
    """Live status of a batch as Server-Sent Events (its page's transport), like a job's."""
    yield ServerSentEvent(retry=RETRY_MILLISECONDS)
    last_sent: dict[str, Any] | None = None
    started = last_sent_at = time.monotonic()
    max_seconds = get_settings().event_stream_seconds
    while True:
        status = await run_in_threadpool(batch_status, batch, store)
        if status != last_sent:
            yield ServerSentEvent(data=status)
            last_sent, last_sent_at = status, time.monotonic()
        elif time.monotonic() - last_sent_at >= HEARTBEAT_SECONDS:
            yield ServerSentEvent(comment="heartbeat")
            last_sent_at = time.monotonic()
        if status["status"] == "finished":
            yield ServerSentEvent(data={"status": "finished"}, event="end")
            return
        await asyncio.sleep(POLL_SECONDS * 2)  # a batch's status reads every job: twice as slow
        if time.monotonic() - started > max_seconds:
            return


@router.post(
    "/{batch_id}/cancel",
    response_model=BatchStatusOut,
    summary="Cancel a batch's unfinished jobs",
    responses={
        **NOT_FOUND,
        403: {"model": ErrorOut, "description": "The request does not carry the batch's token."},
        409: {"model": ErrorOut, "description": "Every job of the batch has already ended."},
    },
)
def cancel_batch(batch: SubmittersBatch, store: JobStoreDep) -> dict[str, Any]:
    """Queued jobs are cancelled at once, running ones stop within a step or two; finished ones stay."""
    cancelled = 0
    for job_id in batch.job_ids:
        previous = store.request_cancel(job_id)
        if previous == "queued":
            announce_finished(store, job_id)
        cancelled += previous in ("queued", "running")
    if not cancelled:
        raise HTTPException(status_code=409, detail="every job of the batch has already ended")
    logger.info("batch %s: cancel requested for %d job(s)", batch.id, cancelled)
    return batch_status(batch, store)


@router.get(
    "/{batch_id}/download",
    summary="A ZIP of the batch's finished results",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}}, **NOT_FOUND},
)
def download_batch(batch: ExistingBatch, store: JobStoreDep, storage: StorageDep) -> StreamingResponse:
    """Every result there is now (PNG), named content__style.png, streamed as it is read."""
    entries = [
        (f"{batch.contents[content]}__{batch.styles[style]}.png", job_id)
        for job_id, (content, style) in zip(batch.job_ids, batch.cells, strict=True)
    ]
    return StreamingResponse(
        zip_stream(entries, store, storage),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="atelier-batch-{batch.id[:8]}.zip"'},
    )


class _Chunks(io.RawIOBase):
    """A write-only, unseekable file that keeps what zipfile writes until it is taken."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def zip_stream(entries: list[tuple[str, str]], store: JobStore, storage: Storage) -> Iterator[bytes]:
    """The ZIP, a file at a time (stored, not deflated: PNGs do not shrink); jobs without a result
    (yet) are left out."""
    sink = _Chunks()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as archive:
        for name, job_id in entries:
            record = store.get(job_id)
            if record is None or not record.has_result:
                continue
            try:
                data = storage.read_bytes(result_key(job_id))
            except FileNotFoundError:
                continue
            archive.writestr(name, data)
            yield sink.take()
    yield sink.take()


@page_router.get("/batches/{batch_id}", response_class=HTMLResponse)
def batch_page(request: Request, batch: ExistingBatch, store: JobStoreDep) -> HTMLResponse:
    """The contact sheet: contents by styles, each cell a job, filling in as jobs finish (batch.js)."""
    status = batch_status(batch, store)
    grid: list[list[dict[str, Any] | None]] = [[None] * len(batch.styles) for _ in batch.contents]
    content_thumbs: list[str] = [""] * len(batch.contents)
    style_thumbs: list[str] = [""] * len(batch.styles)
    for job in status["jobs"]:  # each row's and column's picture: that of any of its jobs
        grid[job["content"]][job["style"]] = job
        content_thumbs[job["content"]] = content_thumbs[job["content"]] or job["content_url"]
        style_thumbs[job["style"]] = style_thumbs[job["style"]] or job["style_url"]
    context = {
        "batch": status,
        "grid": grid,
        "content_thumbs": content_thumbs,
        "style_thumbs": style_thumbs,
        "can_cancel": request_holds_token(request, batch.token_hash),
    }
    return templates.TemplateResponse(request, "batch.html", context)
