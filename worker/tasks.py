"""The Celery task: load a job by id, run the engine, report progress, store the result.

Thin on purpose: job state goes through core.jobs, files through core.storage, the numeric work
through worker.engine (imported on first use, so a prefork parent never initialises TensorFlow).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery.exceptions import SoftTimeLimitExceeded
from redis.exceptions import RedisError

from core.jobs import ClaimOutcome, JobRecord, JobStore, get_job_store, is_job_id
from core.routing import TASK_NAME
from core.settings import get_settings
from core.storage import (
    Storage,
    checkpoint_key,
    content_key,
    get_storage,
    mask_key,
    preview_key,
    result_key,
    storage_problem,
    style_key,
)
from spec.options import StyleOptions
from spec.plan import Limits, RunPlan
from worker import warm
from worker.celery_app import app
from worker.lease import JobLease
from worker.recovery import (
    TaskOutcome,
    claim_job,
    finish_patiently,
    hand_back,
    load_checkpoint,
    patiently,
    requeue_handed_back,
)
from worker.storage_retry import (
    ResultStore,
    StorageGaveUp,
    StorageWaiter,
    WaitInterrupted,
    describe_failure,
    read_upload,
    result_not_stored,
    upload_names,
)

if TYPE_CHECKING:
    import numpy as np

    from worker.engine import Progress, RunImages, StyleResult

logger = logging.getLogger(__name__)

CANCEL_CHECK_SECONDS = 0.1  # one Redis EXISTS at most this often
PREVIEW_JPEG_QUALITY = 85
# Previews are for a screen: a 4096 px print's full-size preview would be 16x the bytes of this.
PREVIEW_MAX_SIDE = 1024


def preview_jpeg(image: np.ndarray) -> bytes:
    """A live preview as stored: ``image`` (uint8 HxWx3) scaled down to at most PREVIEW_MAX_SIDE px on
    its longest side (never up), as JPEG."""
    from worker.engine.images import encode_image, resize_to_max

    return encode_image(resize_to_max(image, PREVIEW_MAX_SIDE), "JPEG", PREVIEW_JPEG_QUALITY)


class JobCallbacks:
    """The engine's on_progress / on_preview / on_checkpoint / should_stop for one job, wired to Redis
    and storage. Progress, preview and checkpoint records are advisory: while Redis is down they are
    skipped (logged) and the job goes on; only the final status waits for Redis (finish_patiently)."""

    def __init__(
        self, job_id: str, store: JobStore, storage: Storage, deadline: float, lease: JobLease | None = None
    ) -> None:
        self.job_id = job_id
        self.store = store
        self.storage = storage
        self.deadline = deadline  # time.monotonic() after which the run stops (soft time limit)
        self.lease = lease
        self.claimed_at = time.monotonic()  # made right after the claim
        self.first_step_at: float | None = None  # the first should_stop() call: the first step starts
        self.progress_interval = get_settings().progress_interval_seconds
        self._last_progress_write = 0.0
        self._last_cancel_check = 0.0
        self.cancelled = False
        self.timed_out = False
        self.latest_image: np.ndarray | None = None  # last preview, saved if the time limit strikes
        self.plan: RunPlan | None = None  # the run's plan: progress is its work done (None: steps)
        self.start_step = 0  # the step this run resumes after (0: from the start)
        self.checkpoint_step = 0  # the step of the checkpoint in storage (0: none), for failure messages
        # Storage calls that may wait for storage to work again, up to the retry time or the time limit.
        retry_seconds = get_settings().storage_retry_seconds
        self.storage_waiter = StorageWaiter(job_id, store, retry_seconds, deadline, self.wait_interrupted)

    def on_progress(self, progress: Progress) -> None:
        now = time.monotonic()
        if progress.step < progress.total and now - self._last_progress_write < self.progress_interval:
            return
        self._last_progress_write = now
        self.advisory(
            "progress",
            lambda: self.store.set_progress(
                self.job_id,
                progress.step,
                progress.total,
                progress.loss,
                progress.elapsed,
                self.work(progress.step),
                self.work(self.start_step) or 0.0,
            ),
        )

    def work(self, step: int) -> float | None:
        """The fraction of the run's work done after ``step`` steps (None without a plan)."""
        return self.plan.work_fraction(step) if self.plan is not None else None

    def on_preview(self, step: int, image: np.ndarray) -> None:
        self.latest_image = image  # full size: the partial result if the time limit strikes
        try:
            self.storage.write_bytes(preview_key(self.job_id), preview_jpeg(image))
        except OSError as error:  # a preview is for watching: the job goes on without it
            if storage_problem(error) is None:
                raise
            logger.warning(
                "job %s: preview of step %d not saved (the job goes on): %s", self.job_id, step, error
            )
            return
        self.advisory("preview", lambda: self.store.set_preview(self.job_id, step))

    def on_checkpoint(self, step: int, image: np.ndarray) -> None:
        """Save the image a redelivered job resumes from: the file first, then the step that names it."""
        from worker.engine.images import encode_image

        try:
            # Replaced, never duplicated: on a nearly full disk the old checkpoint makes room for the new.
            self.storage.replace_bytes(checkpoint_key(self.job_id), encode_image(image, "PNG"))
        except OSError as error:  # a safety net only: the job itself can still finish
            logger.warning("job %s: checkpoint of step %d not saved: %s", self.job_id, step, error)
            return
        self.checkpoint_step = step
        self.advisory("checkpoint", lambda: self.store.set_checkpoint(self.job_id, step))

    @property
    def lease_lost(self) -> bool:
        return self.lease is not None and self.lease.lost

    def should_stop(self) -> bool:
        now = time.monotonic()
        if self.first_step_at is None:
            self.first_step_at = now
        if now >= self.deadline:
            self.timed_out = True
            return True
        if self.lease_lost:
            return True
        if now - self._last_cancel_check >= CANCEL_CHECK_SECONDS:
            self._last_cancel_check = now
            self.advisory("cancel check", self._check_cancel)
        return self.cancelled or self.preempted

    @property
    def preempted(self) -> bool:
        """The worker is shutting down (SIGTERM): the job checkpoints and hands itself back."""
        return self.lease is not None and self.lease.preempted

    def _check_cancel(self) -> None:
        self.cancelled = self.store.cancel_requested(self.job_id)

    def wait_interrupted(self) -> str | None:
        """While the job waits for storage: why the wait must end now (WaitInterrupted), or None."""
        if self.lease_lost:
            return "lost"
        if self.preempted:
            return "preempted"
        self.advisory("cancel check", self._check_cancel)
        return "cancelled" if self.cancelled else None

    def advisory(self, what: str, write: Callable[[], object]) -> None:
        """Run a job store write that the job can do without (progress, preview, checkpoint step)."""
        try:
            write()
        except RedisError as error:
            logger.warning("job %s: %s skipped, Redis down (the job goes on): %s", self.job_id, what, error)


@app.task(name=TASK_NAME, bind=True)
def stylize(self: Any, job_id: str) -> dict[str, Any]:
    """Claim the job (or resume it after its worker crashed, see worker/recovery.py), run it under a
    lease; every outcome (success, cancel, error, time limit, too many attempts) ends up in the record."""
    if not is_job_id(job_id):
        logger.error("job %r: refused, not a job id", job_id)
        return {"status": TaskOutcome.REFUSED}
    store, storage = get_job_store(), get_storage()
    record = patiently(job_id, "load the job", lambda: store.get(job_id))
    if record is None:
        logger.warning("job %s: no record (expired or never created); nothing to do", job_id)
        return {"status": TaskOutcome.MISSING}
    hostname = str(self.request.hostname or "worker")
    store.worker_seen(hostname)
    settings = get_settings()
    claim = patiently(
        job_id,
        "claim the job",
        lambda: claim_job(store, job_id, hostname, settings.job_lease_seconds, settings.job_max_attempts),
    )
    if claim.outcome is ClaimOutcome.EXHAUSTED:
        message = (
            f"gave up after {claim.attempts} attempt(s): the worker running it stopped each time (crashed, "
            "was killed or ran out of memory); try a smaller size or fewer iterations"
        )
        logger.error("job %s: %s", job_id, message)
        finish_patiently(store, job_id, "failed", error=message)
        _delete_checkpoint(storage, job_id)
        return {"status": TaskOutcome.FAILED, "error": message}
    if claim.outcome not in (ClaimOutcome.STARTED, ClaimOutcome.RESUMED):
        # Cancelled while queued, finished by an earlier delivery, or run by a live worker right now.
        logger.info("job %s: not started (%s, status %s)", job_id, claim.outcome, record.status)
        return {"status": TaskOutcome(claim.outcome)}
    if claim.outcome is ClaimOutcome.RESUMED and claim.handed_back:
        logger.warning(
            "job %s: continuing after its worker was stopped (not a crash: attempt %d of %d) on %s",
            job_id, claim.attempts, settings.job_max_attempts, hostname,
        )  # fmt: skip
    elif claim.outcome is ClaimOutcome.RESUMED:
        record = store.get(job_id) or record
        logger.warning(
            "job %s: redelivered after its worker stopped; attempt %d of %d on %s",
            job_id, claim.attempts, settings.job_max_attempts, hostname,
        )  # fmt: skip
    logger.info("job %s: running on %s", job_id, hostname)
    margin = min(5.0, settings.job_soft_time_limit * 0.1)
    deadline = time.monotonic() + settings.job_soft_time_limit - margin
    with JobLease(store, job_id, hostname, settings.job_lease_seconds) as lease:
        callbacks = JobCallbacks(job_id, store, storage, deadline, lease)
        outcome = _run_and_record(job_id, record, store, storage, callbacks)
    if outcome["status"] == TaskOutcome.HANDED_BACK:  # back to the front of the queue: another worker goes on
        raise requeue_handed_back(store, job_id)
    if not callbacks.lease_lost and not outcome.pop("checkpoint_kept", False):
        _delete_checkpoint(storage, job_id)  # the job is final: its checkpoint is not needed
    return outcome


def _delete_checkpoint(storage: Storage, job_id: str) -> None:
    """The finished job's checkpoint goes; storage refusing is logged (retention removes it later)."""
    try:
        storage.delete(checkpoint_key(job_id))
    except OSError as error:
        logger.warning(
            "job %s: checkpoint not deleted (retention removes it with the job): %s", job_id, error
        )


def _run_and_record(
    job_id: str, record: JobRecord, store: JobStore, storage: Storage, callbacks: JobCallbacks
) -> dict[str, Any]:
    """Run the job; every outcome (success, cancel, error, time limit) ends up in the job record."""
    try:
        return _run(job_id, record, store, storage, callbacks)
    except SoftTimeLimitExceeded:
        return _timed_out(job_id, store, storage, callbacks.latest_image, steps=None)
    except WaitInterrupted as interruption:
        return _wait_interrupted(job_id, store, callbacks, interruption.kind)
    except Exception as error:
        described = describe_failure(error)
        if _is_engine_error(error) or described is not None:
            logger.warning("job %s: failed: %s", job_id, described or error)
            finish_patiently(store, job_id, "failed", error=described or str(error))
        else:
            logger.exception("job %s: failed with an unexpected error", job_id)
            finish_patiently(
                store, job_id, "failed", error=f"internal error ({type(error).__name__}); see the worker log"
            )
        return {"status": TaskOutcome.FAILED}


def _wait_interrupted(job_id: str, store: JobStore, callbacks: JobCallbacks, kind: str) -> dict[str, Any]:
    """A storage wait ended early: cancelled, another worker holds the job, or this one stops."""
    if kind == "lost":
        logger.warning("job %s: another worker took the job over while it waited for storage", job_id)
        return {"status": TaskOutcome.ABANDONED}
    if kind == "preempted":
        assert callbacks.lease is not None  # preempted implies a lease
        return hand_back(store, job_id, callbacks.lease.worker, 0, None, lambda step, image: None)  # type: ignore[arg-type]
    message = "cancelled while waiting for storage"
    finish_patiently(store, job_id, "cancelled", error=message)
    logger.info("job %s: %s", job_id, message)
    return {"status": TaskOutcome.CANCELLED}


def _is_engine_error(error: Exception) -> bool:
    """An EngineError (its message is meant for people), checked without importing the engine here:
    if the engine raised it, its module is loaded; if the engine failed to import, it is not one."""
    engine_errors = sys.modules.get("spec.errors")
    return engine_errors is not None and isinstance(error, engine_errors.EngineError)


def _run(
    job_id: str, record: JobRecord, store: JobStore, storage: Storage, callbacks: JobCallbacks
) -> dict[str, Any]:
    from worker.engine import Checkpoint, Hooks
    from worker.engine import stylize as run_engine
    from worker.engine.tiling import resolve_tile_pixels

    settings = get_settings()
    waiter = callbacks.storage_waiter
    results = ResultStore(job_id, store, storage, waiter)
    if record.checkpoint_final and record.checkpoint_step > 0 and results.store_kept():
        # An earlier run finished and kept its image in the checkpoint, storage refusing the result.
        stats = {"steps": record.checkpoint_step, "engine_seconds": 0.0, "stored_kept_result": True}
        finish_patiently(store, job_id, "succeeded", has_result=True, stats=stats)
        logger.info(
            "job %s: succeeded, the image kept at step %d stored as the result",
            job_id,
            record.checkpoint_step,
        )
        return {"status": TaskOutcome.SUCCEEDED, **stats}
    if record.video is not None:  # a clip: its frames in order (worker/video_job.py)
        from worker.video_job import run_video

        return run_video(job_id, record, store, storage, callbacks)
    engine_options = StyleOptions.from_public(record.options)
    images = _read_images(job_id, record, storage, waiter)
    plan = images.plan(engine_options, Limits(max_tile_pixels=resolve_tile_pixels(settings.max_tile_pixels)))
    for note in plan.notes:
        logger.info("job %s: %s", job_id, note)
    checkpoint_step = 0 if record.checkpoint_final else record.checkpoint_step
    start_image, start_step = waiter.call(
        "read the checkpoint", lambda: load_checkpoint(job_id, checkpoint_step, storage)
    )
    callbacks.checkpoint_step = start_step
    callbacks.plan, callbacks.start_step = plan, start_step
    extractor = warm.extractor(settings, engine_options.content_layers, engine_options.style_layers)
    hooks = Hooks(
        on_progress=callbacks.on_progress,
        on_preview=callbacks.on_preview,
        on_checkpoint=callbacks.on_checkpoint,
        checkpoint_every=settings.checkpoint_every,
        should_stop=callbacks.should_stop,
        resume=None if start_image is None else Checkpoint(start_image, start_step),
        label=f"job {job_id}",
    )
    result = run_engine(plan, images, extractor, hooks, style_cache=warm.style_targets(settings))
    if callbacks.lease_lost:
        logger.warning("job %s: another worker took the job over; this run stops without a result", job_id)
        return {"status": TaskOutcome.ABANDONED}
    stats = {
        "engine_seconds": round(result.seconds, 2),
        "steps": result.steps,
        "loss_initial": result.loss_initial,
        "loss_final": result.loss_final,
        "precision": extractor.precision,  # what ATELIER_PRECISION (auto by default) chose here
        "warm_start": result.warm_start,  # compiled steps reused from an earlier job of this size
        # The pace the upload page's time estimates read (JobStore.recent_paces).
        "megapixels": round(plan.width * plan.height / 1e6, 4),
        "megapixel_steps": round(plan.megapixel_steps(start_step, result.steps), 4),
        "style_targets": result.style_targets,  # {"cached", "computed"}: style passes saved and run
        "loss_size": f"{result.loss_size[1]}x{result.loss_size[0]}",  # the rung the losses are of
    }
    if callbacks.first_step_at is not None:  # claim -> first step (docs/performance.md)
        stats["first_step_seconds"] = round(callbacks.first_step_at - callbacks.claimed_at, 3)
    callbacks.advisory(
        "progress",
        lambda: store.set_progress(
            job_id,
            result.steps,
            engine_options.iterations,
            result.loss_final,
            result.seconds,
            callbacks.work(result.steps),
        ),
    )
    if result.stopped and callbacks.preempted and not (callbacks.cancelled or callbacks.timed_out):
        assert callbacks.lease is not None  # preempted implies a lease
        return hand_back(
            store, job_id, callbacks.lease.worker, result.steps, result.image, callbacks.on_checkpoint
        )
    if result.stopped and callbacks.timed_out:
        return _timed_out(job_id, store, storage, result.image, steps=result.steps, stats=stats)
    if result.stopped:
        message = f"cancelled after {result.steps} step(s)"
        finish_patiently(store, job_id, "cancelled", error=message, stats=stats)
        logger.info("job %s: cancelled after %d step(s)", job_id, result.steps)
        return {"status": TaskOutcome.CANCELLED, **stats}
    return _store_result(job_id, store, results, result, callbacks.checkpoint_step, stats)


def _read_images(job_id: str, record: JobRecord, storage: Storage, waiter: StorageWaiter) -> RunImages:
    """The job's uploads as the engine takes them (a missing one: an error that says so)."""
    from worker.engine import RunImages

    style_names, mask_names = upload_names(record.style_count)
    return RunImages(
        content=read_upload(storage, waiter, content_key(job_id), "content image"),
        styles=[
            read_upload(storage, waiter, style_key(job_id, index), style_names[index])
            for index in range(record.style_count)
        ],
        masks=[
            read_upload(storage, waiter, mask_key(job_id, index), mask_names[index]) if has_mask else None
            for index, has_mask in enumerate(record.masks)
        ]
        or None,
    )


def _store_result(
    job_id: str,
    store: JobStore,
    results: ResultStore,
    result: StyleResult,
    checkpoint_step: int,
    stats: dict[str, Any],
) -> dict[str, Any]:
    """Write the finished image (retried while storage refuses, kept when it gives up) and finish."""
    from worker.engine.images import encode_image

    png = encode_image(result.image, "PNG")
    try:
        results.store_result(png, result.steps)
    except WaitInterrupted as interruption:
        if interruption.kind == "preempted":
            results.keep_once(png, result.steps)  # the next worker stores it (store_kept)
        raise
    except (StorageGaveUp, OSError) as error:  # time ran out, or storage refused for good
        message = result_not_stored(error, results.kept, checkpoint_step)
        logger.error("job %s: failed: %s", job_id, message)
        finish_patiently(store, job_id, "failed", error=message, stats=stats)
        return {"status": TaskOutcome.FAILED, "error": message, "checkpoint_kept": True}
    finish_patiently(store, job_id, "succeeded", has_result=True, stats=stats)
    logger.info("job %s: succeeded, %d step(s) in %.1f s", job_id, result.steps, result.seconds)
    return {"status": TaskOutcome.SUCCEEDED, **stats}


def _timed_out(
    job_id: str,
    store: JobStore,
    storage: Storage,
    image: np.ndarray | None,
    steps: int | None,
    stats: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The soft time limit struck: keep the partial image (if there is one) and fail the job."""
    from worker.engine.images import encode_image

    limit = get_settings().job_soft_time_limit
    done = f" after {steps} step(s)" if steps is not None else ""
    message = f"stopped at the time limit of {limit} s{done}"
    stored = False
    if image is not None:
        try:  # once: the time limit is over, there is no time to wait for storage
            storage.write_bytes(result_key(job_id), encode_image(image, "PNG"))
            stored = True
            message += "; the partial image is kept as the result"
        except OSError as error:
            problem = storage_problem(error)
            if problem is None:
                raise
            message += f"; the partial image could not be stored ({problem.reason})"
    else:
        message += "; no partial image was ready"
    message += " (ask for fewer iterations or a smaller size)"
    finish_patiently(store, job_id, "failed", error=message, has_result=stored, stats=stats)
    logger.warning("job %s: %s", job_id, message)
    return {"status": TaskOutcome.FAILED, "error": message}
