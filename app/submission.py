"""Creating a job: the one code path the JSON API (POST /api/jobs) and the HTML form (POST /jobs) share.

Usage from an async route (submit_job is a coroutine; the slow parts run in a thread pool), with
the job store and storage as the route's dependencies (app/deps.py):

    # app/admission.py has already run admit_submission (rate limit, queue cap) before the body
    options = options_from_form(form_fields)                # or a JobOptionsIn built by FastAPI
    job = await submit_job(content, styles, options, store=store, storage=storage)
    # job.id, job.record.status ("queued"), job.token (give it to the submitter: only it may cancel
    # or delete the job; see app/job_tokens.py); the job's page is /jobs/{job.id}

Styles and the content may also be the library's (core/library.py): a LibraryImage in place of an
upload (library_style / library_photo look them up by id). Its image, checked at start, is stored
into the job exactly as an upload's would be, so a worker needs no copy of the library; the job's
record credits it.

Each step raises SubmissionError: error.status_code (400/413/415/422/429/503), error.detail (for
people), error.field (or None), error.retry_after (seconds, for 429/503 when retrying later helps).
Routes let it propagate: app.main's handler answers it, as JSON for the API and as the upload form
with the problem shown for the HTML form.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import UploadFile
from pydantic import ValidationError
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUploadFile

from app.errors import REDIS_RETRY_AFTER_SECONDS, REDIS_UNAVAILABLE, describe_validation_error
from app.job_tokens import hash_job_token, new_job_token
from app.queue import enqueue
from app.ratelimit import RateLimited, count_submission
from app.uploads import (
    CleanImage,
    DecodersBusy,
    UploadRejected,
    clean_image,
    decode_bytes,
    decode_slots,
    file_too_large,
    inspect_image,
    is_black,
    stored_longest_side,
    to_mask,
)
from core.jobs import JobRecord, JobStore, QueueFull, get_redis, new_job_id
from core.library import LibraryImage, UnknownLibraryImage, get_library
from core.options import JobOptionsIn, OptionValueError
from core.settings import get_settings
from core.storage import Storage, content_key, mask_key, style_key, video_source_key
from spec.options import StyleOptions
from spec.plan import Limits, MaskInput, Refusal, RunPlan, count_refusals, plan_run, plan_video

logger = logging.getLogger(__name__)


class SubmissionError(Exception):
    """A job could not be created; nothing was queued and nothing stays written.

    status_code: the HTTP status that fits (400 bad request, 413 too large, 415 not an image,
    422 invalid option or image, 429 too many submissions from this client, 503 Redis or the broker
    unavailable or the queue full); detail: a sentence a person can act on; field: the form field at
    fault ("content", "style", an option name) or None; retry_after: seconds to wait before trying
    again (the Retry-After header), or None.
    """

    def __init__(
        self, status_code: int, detail: str, field: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.field = field
        self.retry_after = retry_after


# Retry-After for a full queue: the queue drains at the pace of whole jobs (a minute or more each).
QUEUE_FULL_RETRY_AFTER_SECONDS = 60
# Retry-After when every decode slot stayed busy: a decode takes a few seconds at most.
DECODERS_BUSY_RETRY_AFTER_SECONDS = 5
# No space left on the device, or over the user's disk quota (local storage).
STORAGE_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# Retry-After when storage is full: freeing space (retention, an operator) takes minutes.
STORAGE_FULL_RETRY_AFTER_SECONDS = 60


@dataclass(frozen=True)
class SubmittedJob:
    """A new job and its token; the token is shown to the submitter once and stored only hashed."""

    record: JobRecord
    token: str

    @property
    def id(self) -> str:
        return self.record.id


# A style image of a job: an upload, or a painting of the library.
StyleSource = UploadFile | LibraryImage
# The form fields that name library images by id (POST /api/jobs and the page's form).
STYLE_ID_FIELD = "style_id"
CONTENT_EXAMPLE_FIELD = "content_example"


def library_style(style_id: str) -> LibraryImage:
    """The library's painting of that id; an unknown id is a 422 naming it (nothing is stored yet)."""
    try:
        return get_library().style(style_id.strip())
    except UnknownLibraryImage as error:
        raise SubmissionError(
            422, f"{STYLE_ID_FIELD}: {error} (GET /api/styles lists them)", STYLE_ID_FIELD
        ) from error


def library_photo(photo_id: str) -> LibraryImage:
    """The library's example photo of that id; an unknown id is a 422 naming it."""
    try:
        return get_library().photo(photo_id.strip())
    except UnknownLibraryImage as error:
        raise SubmissionError(
            422, f"{CONTENT_EXAMPLE_FIELD}: {error} (GET /api/examples lists them)", CONTENT_EXAMPLE_FIELD
        ) from error


def styles_in_form_order(parts: Sequence[tuple[str, Any]]) -> list[StyleSource]:
    """The style images of a form, uploads (field "style") and library paintings (field "style_id")
    together, in the order their parts appear: style_blend's weights and the masks follow this
    order. Untouched file inputs and empty ids are skipped."""
    styles: list[StyleSource] = []
    for name, value in parts:
        if name == "style" and was_chosen(value):
            styles.append(value)
        elif name == STYLE_ID_FIELD and isinstance(value, str) and value.strip():
            styles.append(library_style(value))
    return styles


def content_source(content: UploadFile | None, example_id: str | None) -> UploadFile | LibraryImage | None:
    """The content image: the upload, or the library's example photo named by content_example."""
    uploaded = content is not None and was_chosen(content)
    if example_id and example_id.strip():
        if uploaded:
            raise SubmissionError(
                422,
                f"content: send either a content image or {CONTENT_EXAMPLE_FIELD}, not both",
                "content",
            )
        return library_photo(example_id)
    return content if uploaded else None


def client_address(request: Any) -> str:
    """The submitting client's IP address (a Starlette Request), the rate limit's key."""
    return request.client.host if request.client else "unknown"


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
    field, message = describe_validation_error(error.errors()[0])
    return SubmissionError(422, f"{field}: {message}" if field else message, field)


async def admit_submission(client: str, store: JobStore) -> None:
    """Count one submission attempt of client (an IP address) and check the queue has room.

    app/admission.py calls it before the request's body is read, so every attempt counts against
    ATELIER_RATE_LIMIT_PER_MINUTE (a client probing the validator is limited too) and a refused
    client's uploads are never read. Raises
    SubmissionError 429 (too many submissions) or 503 (queue full, or Redis down), with retry_after.
    """
    await run_in_threadpool(_check_rate_and_queue, client, store)


async def submit_job(
    content: UploadFile | LibraryImage | None,
    styles: Sequence[StyleSource],
    options: JobOptionsIn,
    masks: list[UploadFile] | None = None,
    *,
    store: JobStore,
    storage: Storage,
    callback: tuple[str, str] | None = None,
    submitter: str = "",
) -> SubmittedJob:
    """Validate the uploads and options, store the images, create the job record and enqueue it.

    content: the content image upload, or a library photo; styles: one or more style images, each an
    upload or a library painting, in the order style_blend and the masks follow (at most
    ATELIER_MAX_STYLE_IMAGES); options: validated JobOptionsIn (size/iterations ranges are already
    checked); masks: none, or one upload per style image in their order, an empty one for a style
    without a mask (stored greyscale at the content's size). admit_submission has run before
    (app/admission.py, before the body is read). callback: the checked webhook (app/webhooks.py).
    submitter: the client's address, kept so its later batches queue fairly (app/batches.py).

    The run plan (spec/plan.py) decides what is refused and which notes the job gets: its counts
    before any image is decoded, the rest from the decoded images' sizes.

    Order: everything is validated first (nothing written for bad input), then the images are
    written to storage, then the job record is created (refused atomically if the queue is full),
    then the job is sent to the Celery queue. If any step fails, whatever was written is removed
    and SubmissionError is raised. Returns the new job (status "queued") and its token.
    """
    settings = get_settings()
    styles = [style for style in styles if isinstance(style, LibraryImage) or was_chosen(style)]
    if content is None or not (isinstance(content, LibraryImage) or was_chosen(content)):
        raise SubmissionError(
            422,
            "content: a content image is required (or content_example, an example photo)",
            "content",
        )
    masks = masks or []
    try:
        resolved = options.resolve()
    except OptionValueError as error:
        raise SubmissionError(422, f"{error.option}: {error}", error.option) from error
    run_options = StyleOptions.from_public(resolved)
    limits = Limits(max_styles=settings.max_style_images)
    if isinstance(content, StarletteUploadFile) and await run_in_threadpool(is_video_upload, content):
        return await _submit_video(
            content, styles, resolved, run_options, limits, masks, store, storage, callback, submitter
        )
    # Refused before any image is decoded when the counts alone are wrong.
    _refuse(count_refusals(len(styles), len(masks) if masks else None, run_options, limits))

    content_image = await _clean_source(content, "content")
    style_images = [await _clean_source(style, "style") for style in styles]
    mask_images = [None if mask.size == 0 else await _clean_upload(mask, "mask") for mask in masks]
    plan = await run_in_threadpool(plan_upload, content_image, style_images, mask_images, run_options, limits)
    _refuse(plan.refusals)
    fitted = await run_in_threadpool(fit_masks, mask_images, content_image) if plan.has_masks else []
    credits = Credits(
        styles=[style.record() if isinstance(style, LibraryImage) else None for style in styles],
        content=content.record() if isinstance(content, LibraryImage) else None,
    )
    return await run_in_threadpool(
        _store_and_enqueue,
        content_image,
        style_images,
        resolved,
        fitted,
        list(plan.notes),
        credits,
        store,
        storage,
        callback,
        submitter,
    )


@dataclass(frozen=True)
class Credits:
    """The library images a job uses, for its record: per style image a painting or None (an upload),
    and the example photo of the content or None."""

    styles: list[dict[str, str] | None]
    content: dict[str, str] | None


def plan_upload(
    content: CleanImage,
    styles: list[CleanImage],
    masks: list[CleanImage | None],
    options: StyleOptions,
    limits: Limits,
) -> RunPlan:
    """The run plan of these uploads (spec/plan.py): its refusals and notes are the submission's."""
    return plan_run(
        (content.height, content.width),
        [(style.height, style.width) for style in styles],
        options,
        masks=[None if m is None else MaskInput(m.height, m.width, is_black(m)) for m in masks],
        limits=limits,
    )


def fit_masks(masks: list[CleanImage | None], content: CleanImage) -> list[CleanImage | None]:
    """The masks as stored: greyscale, at the content's size (the plan has checked their shapes)."""
    return [None if mask is None else to_mask(mask, content.width, content.height) for mask in masks]


def _refuse(refusals: Sequence[Refusal]) -> None:
    if refusals:
        raise SubmissionError(422, str(refusals[0]), refusals[0].field)


def _check_rate_and_queue(client: str, store: JobStore) -> None:
    settings = get_settings()
    try:
        count_submission(get_redis(), client, settings.rate_limit_per_minute)
        queued = store.queued_count()
    except RedisError as error:
        logger.error("submission refused: Redis unavailable while checking the limits: %s", error)
        raise SubmissionError(
            503,
            f"the job could not be created: {REDIS_UNAVAILABLE}",
            retry_after=REDIS_RETRY_AFTER_SECONDS,
        ) from error
    except RateLimited as error:
        logger.warning("client %s: submission refused, %s", client, error)
        raise SubmissionError(
            429,
            f"too many submissions: at most {error.limit} per minute (ATELIER_RATE_LIMIT_PER_MINUTE); "
            f"try again in {error.retry_after} s",
            retry_after=error.retry_after,
        ) from error
    # A cheap early refusal; JobStore.create checks the cap again atomically.
    if queued >= settings.max_queued_jobs:
        raise _queue_full()


def _queue_full() -> SubmissionError:
    limit = get_settings().max_queued_jobs
    return SubmissionError(
        503,
        f"the queue is full ({limit} jobs waiting, ATELIER_MAX_QUEUED_JOBS); try again later",
        retry_after=QUEUE_FULL_RETRY_AFTER_SECONDS,
    )


def was_chosen(part: Any) -> bool:
    """A file part the person actually filled: browsers send an untouched file input as an empty part
    with no file name. (request.form() yields Starlette's UploadFile; FastAPI's is a subclass.)"""
    return isinstance(part, StarletteUploadFile) and bool(part.filename or part.size)


def chosen_files(parts: list[Any]) -> list[UploadFile]:
    """The filled file parts of a form field, in order (see was_chosen)."""
    return [part for part in parts if was_chosen(part)]


async def _clean_source(source: UploadFile | LibraryImage, field: str) -> CleanImage:
    """A library image as checked when the library was loaded, or the upload checked now."""
    if isinstance(source, LibraryImage):
        return await run_in_threadpool(source.stored)  # encoded once, on first use
    return await _clean_upload(source, field)


async def _clean_upload(upload: UploadFile, field: str) -> CleanImage:
    """The upload checked and stored-size (app/uploads.py), decoded when a decode slot is free."""
    settings = get_settings()
    longest = stored_longest_side(field, settings.max_size)
    limits = {"max_pixels": settings.max_upload_pixels, "min_side": settings.min_image_side}
    slots = decode_slots(settings.max_concurrent_decodes, settings.decode_memory_mb)
    try:
        if not upload.size:
            raise UploadRejected(400, "the file is empty")
        if upload.size > settings.max_upload_bytes:  # app/admission.py cuts such a part off as it streams
            raise UploadRejected(413, file_too_large(settings.max_upload_bytes))
        # Header and decode read the spooled file in a thread: both may touch the disk.
        header = await run_in_threadpool(inspect_image, upload.file, **limits)
        async with slots.held(decode_bytes(header, longest), timeout=settings.decode_wait_seconds):
            return await run_in_threadpool(clean_image, upload.file, longest=longest, **limits)
    except UploadRejected as error:
        raise SubmissionError(error.status_code, f"{field}: {error.detail}", field) from error
    except DecodersBusy as error:
        logger.warning("submission refused: %s (ATELIER_MAX_CONCURRENT_DECODES, ..._MEMORY_MB)", error)
        raise SubmissionError(
            503,
            "the server is busy decoding other uploads; try again in a few seconds",
            retry_after=DECODERS_BUSY_RETRY_AFTER_SECONDS,
        ) from error


def _store_and_enqueue(
    content: CleanImage,
    styles: list[CleanImage],
    options: dict[str, Any],
    masks: list[CleanImage | None],
    notes: list[str],
    credits: Credits,
    store: JobStore,
    storage: Storage,
    callback: tuple[str, str] | None = None,
    submitter: str = "",
    video: VideoUpload | None = None,
) -> SubmittedJob:
    job_id = new_job_id()
    token = new_job_token()
    settings = get_settings()
    stage = "storing the images"
    try:
        if video is not None:  # the clip as it came; content.png is its first frame
            storage.write_bytes(video_source_key(job_id), video.data)
        storage.write_bytes(content_key(job_id), content.png)
        for index, style in enumerate(styles):
            storage.write_bytes(style_key(job_id, index), style.png)
        for index, mask in enumerate(masks):
            if mask is not None:
                storage.write_bytes(mask_key(job_id, index), mask.png)
        stage = "creating the job record"
        record = store.create(
            job_id,
            options,
            style_count=len(styles),
            token_hash=hash_job_token(token),
            max_queued=settings.max_queued_jobs,
            masks=[mask is not None for mask in masks],
            notes=notes,
            style_credits=credits.styles,
            content_credit=credits.content,
            callback=callback,
            submitter=submitter,
            video=None if video is None else video.record(),
        )
        stage = "sending the job to the queue"
        enqueue(job_id, int(options["size"]))
    except QueueFull as error:
        logger.warning("job %s: refused, the queue is full; removing its images", job_id)
        _undo(job_id, store, storage)
        raise _queue_full() from error
    except OSError as error:
        if error.errno not in STORAGE_FULL_ERRNOS:
            raise _failed(job_id, stage, error, store, storage) from error
        logger.error("job %s: refused, storage is full (%s); removing what was written", job_id, error)
        _undo(job_id, store, storage)
        raise SubmissionError(
            503,
            "the job could not be created: storage is full; try again later",
            retry_after=STORAGE_FULL_RETRY_AFTER_SECONDS,
        ) from error
    except Exception as error:
        raise _failed(job_id, stage, error, store, storage) from error
    logger.info(
        "job %s: queued (%dx%d content, %d style(s) of which %d from the library, size %s, %s iterations)",
        job_id,
        content.width,
        content.height,
        len(styles),
        sum(credit is not None for credit in credits.styles),
        options["size"],
        options["iterations"],
    )
    return SubmittedJob(record, token)


def _failed(job_id: str, stage: str, error: Exception, store: JobStore, storage: Storage) -> SubmissionError:
    """Another failure while creating the job: what was written is removed; 503 when retrying may help."""
    logger.exception("job %s: submission failed while %s; removing what was written", job_id, stage)
    _undo(job_id, store, storage)
    unavailable = isinstance(error, RedisError | OSError) or stage.startswith("send")
    return SubmissionError(
        503 if unavailable else 500,
        f"the job could not be created: failure while {stage}",
        retry_after=REDIS_RETRY_AFTER_SECONDS if unavailable else None,
    )


def _undo(job_id: str, store: JobStore, storage: Storage) -> None:
    """Best effort removal of a half-created job; each failure is logged, the first error stays raised."""
    for undo in (store.delete, storage.delete_job):
        try:
            undo(job_id)
        except Exception:
            logger.exception("job %s: could not undo part of a failed submission", job_id)


# --- video content (docs/video.md) ------------------------------------------------------------------


@dataclass(frozen=True)
class VideoUpload:
    """A probed clip: its bytes (stored as they came) and what core.media.probe found."""

    data: bytes
    info: Any  # core.media.VideoInfo

    def record(self) -> dict[str, Any]:
        info = self.info
        return {
            "width": info.width, "height": info.height, "frames": info.frames, "fps": info.fps,
            "source_fps": info.source_fps, "source_frames": info.source_frames, "codec": info.codec,
            "has_audio": info.has_audio,
        }  # fmt: skip


def is_video_upload(upload: UploadFile) -> bool:
    """Whether the content upload is a clip: a GIF of several frames, by its bytes (a GIF of one frame
    is an image; an animated WebP or PNG is an image whose first frame is used), or a video's name or
    media type (the probe refuses what is not one). A non-GIF named .gif goes the image way."""
    from core.media import VIDEO_MEDIA_TYPES, is_video_name

    upload.file.seek(0)
    is_gif = upload.file.read(6) in (b"GIF87a", b"GIF89a")
    upload.file.seek(0)
    if is_gif:
        return _gif_frames(upload) > 1
    name = (upload.filename or "").lower()
    media_type = (upload.content_type or "").lower()
    if name.endswith(".gif") or media_type == "image/gif":
        return False
    return is_video_name(name) or (media_type in VIDEO_MEDIA_TYPES)


def _gif_frames(upload: UploadFile) -> int:
    from PIL import Image

    upload.file.seek(0)
    try:
        with Image.open(upload.file) as image:  # the header and frame index only: nothing decoded
            return int(getattr(image, "n_frames", 1))
    except Image.DecompressionBombError:  # a huge logical screen: core.media.probe refuses it by name
        return 2
    except Exception:  # not a GIF Pillow reads: the image path refuses it with its own words
        return 1
    finally:
        upload.file.seek(0)


async def _submit_video(
    content: UploadFile,
    styles: Sequence[StyleSource],
    resolved: dict[str, Any],
    options: StyleOptions,
    limits: Limits,
    masks: list[UploadFile],
    store: JobStore,
    storage: Storage,
    callback: tuple[str, str] | None,
    submitter: str,
) -> SubmittedJob:
    """A clip as the content: probed (never decoded whole), refused with a 4xx naming the problem
    before anything is stored, planned frame by frame (spec/plan.py's plan_video)."""
    if masks:
        raise SubmissionError(422, "mask: masks are not supported with a video's content", "mask")
    _refuse(count_refusals(len(styles), None, options, limits))
    upload = await run_in_threadpool(_probe_upload, content, options.fps)
    style_images = [await _clean_source(style, "style") for style in styles]
    plan = plan_video(
        (upload.info.height, upload.info.width), [(s.height, s.width) for s in style_images], options,
        upload.info.frames, upload.info.fps, limits=limits,
    )  # fmt: skip
    _refuse(plan.refusals)
    first = await run_in_threadpool(_first_frame, upload.data)
    credits = Credits(
        styles=[style.record() if isinstance(style, LibraryImage) else None for style in styles], content=None
    )
    notes = [*plan.first.notes, f"A video of {upload.info.frames} frames at {upload.info.fps:g} fps."]
    return await run_in_threadpool(
        _store_and_enqueue,
        first,
        style_images,
        resolved,
        [],
        notes,
        credits,
        store,
        storage,
        callback,
        submitter,
        upload,
    )


def _probe_upload(upload: UploadFile, fps: float) -> VideoUpload:
    from core.media import VideoLimits, probe

    settings = get_settings()
    if not upload.size:
        raise SubmissionError(400, "content: the file is empty", "content")
    if upload.size > settings.max_upload_bytes:
        raise SubmissionError(413, f"content: {file_too_large(settings.max_upload_bytes)}", "content")
    upload.file.seek(0)
    data = upload.file.read()
    limits = VideoLimits(settings.max_video_seconds, settings.max_video_frames, settings.max_upload_pixels)
    try:
        return VideoUpload(data, probe(data, fps, limits))
    except UploadRejected as error:
        raise SubmissionError(error.status_code, f"content: {error.detail}", "content") from error


def _first_frame(data: bytes) -> CleanImage:
    from core.media import first_frame_png

    try:
        png, width, height = first_frame_png(data)
    except UploadRejected as error:
        raise SubmissionError(error.status_code, f"content: {error.detail}", "content") from error
    return CleanImage(png=png, width=width, height=height)
