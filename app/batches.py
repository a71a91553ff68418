"""Batches: every content × style job (or a list of pairs) from one submission, with one set of options.

A batch does not blend its styles: each job is one content with one style, an ordinary job with its
own record, page, checkpoints and resume (app/submission.py's checks, per job). The batch record
(core/jobs/batches.py) ties them together; one token (hashed into every job) cancels them all.

Fairness: the batch's jobs go on the Celery queue with rising priorities (core.routing.fair_priority,
Celery's own priorities on Redis), counted from the jobs the submitter already has waiting; a job
of another client goes in at the first step, so it waits for one of the batch's jobs, not all.

Everything is checked before anything is written: the number of jobs (ATELIER_MAX_BATCH_JOBS), the
options, every upload, every pair's run plan. If writing or queueing then fails, every job written
so far is removed again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from app.job_tokens import hash_job_token, new_job_token
from app.queue import enqueue
from app.submission import (
    STORAGE_FULL_ERRNOS,
    STORAGE_FULL_RETRY_AFTER_SECONDS,
    StyleSource,
    SubmissionError,
    _clean_source,
    _clean_upload,
    _failed,
    _queue_full,
    _refuse,
    _undo,
    chosen_files,
    plan_upload,
)
from app.uploads import CleanImage
from core.jobs import BatchRecord, BatchStore, JobStore, QueueFull, new_job_id
from core.library import LibraryImage
from core.options import JobOptionsIn, OptionValueError
from core.routing import fair_priority
from core.settings import get_settings
from core.storage import Storage, content_key, style_key
from spec.options import StyleOptions
from spec.plan import Limits, count_refusals

logger = logging.getLogger(__name__)

Cell = tuple[int, int]  # (content index, style index), 0-based
NAME_LENGTH = 40


@dataclass(frozen=True)
class SubmittedBatch:
    record: BatchRecord
    token: str

    @property
    def id(self) -> str:
        return self.record.id


def batch_store(store: JobStore) -> BatchStore:
    """The batches beside this job store's jobs (same Redis); they live as long as any of their jobs."""
    return BatchStore(store.redis)


def parse_pairs(text: str | None, contents: int, styles: int) -> list[Cell]:
    """The jobs' cells: every content × style, or the pairs listed as "content:style,..." (1-based)."""
    if not text or not text.strip():
        return [(c, s) for c in range(contents) for s in range(styles)]
    cells: list[Cell] = []
    for item in text.replace(" ", "").split(","):
        match = re.fullmatch(r"(\d+):(\d+)", item)
        if not match:
            raise SubmissionError(422, f"pairs: {item!r} is not content:style (1-based numbers)", "pairs")
        cell = (int(match[1]) - 1, int(match[2]) - 1)
        if not (0 <= cell[0] < contents and 0 <= cell[1] < styles):
            raise SubmissionError(
                422,
                f"pairs: {item} names no image: {contents} content(s) and {styles} style(s) were sent",
                "pairs",
            )
        if cell in cells:
            raise SubmissionError(422, f"pairs: {item} is listed twice", "pairs")
        cells.append(cell)
    return cells


def unique_names(images: Sequence[UploadFile | LibraryImage], kind: str) -> list[str]:
    """Short, file-system-safe names of the images (an upload's file name's stem, a painting's id),
    unique in the batch: they name the ZIP's files and the contact sheet's rows and columns."""
    names: list[str] = []
    for index, image in enumerate(images, start=1):
        given = image.id if isinstance(image, LibraryImage) else PurePath(image.filename or "").stem
        stem = re.sub(r"[^0-9A-Za-z._-]+", "-", given).strip("-.")[:NAME_LENGTH]
        name = stem or f"{kind}-{index}"
        while name in names:
            name = f"{stem or kind}-{index}" if name == stem else f"{name}-{index}"
        names.append(name)
    return names


async def submit_batch(
    contents: list[UploadFile],
    styles: Sequence[StyleSource],
    options: JobOptionsIn,
    pairs: str | None,
    *,
    store: JobStore,
    storage: Storage,
    submitter: str,
    callback: tuple[str, str] | None = None,
) -> SubmittedBatch:
    """Validate everything, then store and queue every job and the batch record (see the module)."""
    settings = get_settings()
    contents = chosen_files(contents)  # styles: chosen ones only (app.submission.styles_in_form_order)
    if not contents:
        raise SubmissionError(422, "content: at least one content image is required", "content")
    if not styles:
        raise SubmissionError(
            422, "style: at least one style image (or style_id, a library painting) is required", "style"
        )
    cells = parse_pairs(pairs, len(contents), len(styles))
    if len(cells) > settings.max_batch_jobs:
        raise SubmissionError(
            422,
            f"a batch makes at most {settings.max_batch_jobs} jobs (ATELIER_MAX_BATCH_JOBS); "
            f"{len(contents)} content(s) × {len(styles)} style(s) would make {len(cells)}"
            if not pairs
            else f"pairs: a batch makes at most {settings.max_batch_jobs} jobs (ATELIER_MAX_BATCH_JOBS), "
            f"not {len(cells)}",
            "pairs" if pairs else "content",
        )
    try:
        resolved = options.resolve()
    except OptionValueError as error:
        raise SubmissionError(422, f"{error.option}: {error}", error.option) from error
    run_options = StyleOptions.from_public(resolved)
    limits = Limits(max_styles=settings.max_style_images)
    _refuse(count_refusals(1, None, run_options, limits))  # one style per job: a batch does not blend
    content_images = [await _clean_upload(upload, "content") for upload in contents]
    style_images = [await _clean_source(style, "style") for style in styles]
    notes: list[list[str]] = []
    for content_index, style_index in cells:
        plan = await run_in_threadpool(
            plan_upload, content_images[content_index], [style_images[style_index]], [], run_options, limits
        )
        _refuse(plan.refusals)
        notes.append(list(plan.notes))
    names = (unique_names(contents, "content"), unique_names(styles, "style"))
    return await run_in_threadpool(
        _store_and_enqueue,
        content_images,
        style_images,
        cells,
        names,
        [style.record() if isinstance(style, LibraryImage) else None for style in styles],
        resolved,
        notes,
        submitter,
        callback,
        store,
        storage,
    )


def _store_and_enqueue(
    contents: list[CleanImage],
    styles: list[CleanImage],
    cells: list[Cell],
    names: tuple[list[str], list[str]],
    style_credits: list[dict[str, str] | None],
    options: dict[str, Any],
    notes: list[list[str]],
    submitter: str,
    callback: tuple[str, str] | None,
    store: JobStore,
    storage: Storage,
) -> SubmittedBatch:
    settings = get_settings()
    batch_id, token = new_job_id(), new_job_token()
    token_hash = hash_job_token(token)
    batches = batch_store(store)
    written: list[str] = []
    stage = "storing the images"
    try:
        waiting_ahead = store.queued_by(submitter)
        job_ids: list[str] = []
        for (content_index, style_index), job_notes in zip(cells, notes, strict=True):
            job_id = new_job_id()
            written.append(job_id)
            stage = "storing the images"
            storage.write_bytes(content_key(job_id), contents[content_index].png)
            storage.write_bytes(style_key(job_id, 0), styles[style_index].png)
            stage = "creating the job records"
            store.create(
                job_id,
                options,
                style_count=1,
                token_hash=token_hash,
                max_queued=settings.max_queued_jobs,
                notes=job_notes,
                style_credits=[style_credits[style_index]],
                submitter=submitter,
                batch_id=batch_id,
                priority=fair_priority(waiting_ahead + len(job_ids)),
            )
            job_ids.append(job_id)
        record = batches.create(
            batch_id, job_ids, cells, *names, token_hash=token_hash, submitter=submitter, callback=callback
        )
        stage = "sending the jobs to the queue"
        for index, job_id in enumerate(job_ids):
            enqueue(job_id, int(options["size"]), fair_priority(waiting_ahead + index))
    except QueueFull as error:
        logger.warning("batch %s: refused, the queue is full; removing its %d job(s)", batch_id, len(written))
        _undo_batch(batch_id, written, store, storage)
        raise _queue_full() from error
    except OSError as error:
        if error.errno not in STORAGE_FULL_ERRNOS:
            _undo_batch(batch_id, written[:-1], store, storage)
            raise _failed(written[-1] if written else batch_id, stage, error, store, storage) from error
        _undo_batch(batch_id, written, store, storage)
        raise SubmissionError(
            503,
            "the batch could not be created: storage is full; try again later",
            retry_after=STORAGE_FULL_RETRY_AFTER_SECONDS,
        ) from error
    except Exception as error:
        _undo_batch(batch_id, written[:-1], store, storage)
        raise _failed(written[-1] if written else batch_id, stage, error, store, storage) from error
    logger.info(
        "batch %s: queued %d job(s) (%d content(s) x %d style(s), size %s, %s iterations)",
        batch_id, len(job_ids), len(contents), len(styles), options["size"], options["iterations"],
    )  # fmt: skip
    return SubmittedBatch(record, token)


def _undo_batch(batch_id: str, job_ids: list[str], store: JobStore, storage: Storage) -> None:
    """Remove what a failed batch submission wrote: its jobs (records and images) and its record."""
    for job_id in job_ids:
        _undo(job_id, store, storage)
    batch_store(store).delete(batch_id)
