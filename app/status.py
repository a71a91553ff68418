"""The public view of a job, defined once: the JSON of GET /api/jobs/{id}, also pushed by the SSE route
and rendered by the job page.

JobStatusOut documents every field (the OpenAPI page); public_status builds it from the job store's
record, so any route (JSON, SSE, HTML page) gets the same fields with the same meaning.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from core.jobs import JobRecord, JobStatus, JobStore
from core.progress import eta_seconds as eta_seconds_left


class StyleCreditOut(BaseModel):
    """A library painting a job paints with (GET /api/styles)."""

    id: str
    title: str
    artist: str
    year: str
    licence: str


class ContentCreditOut(BaseModel):
    """The library's example photo a job's content is (GET /api/examples)."""

    id: str
    title: str
    credit: str = Field(description="Who took it.")
    licence: str


class WebhookAttemptOut(BaseModel):
    attempt: int = Field(description="1 for the first try, 2 for the first retry, ...")
    at: str = Field(description="When it was made, ISO 8601, UTC.")
    outcome: str = Field(description="delivered, retrying (another attempt follows), failed or refused.")
    status_code: int | None = Field(description="The receiver's HTTP status; null when none came.")
    error: str | None = Field(description="Why no answer came (timeout, refused connection, ...).")
    seconds: float = Field(description="How long the attempt took.")


class WebhookOut(BaseModel):
    host: str = Field(description="host[:port] of the callback URL (never its path or query).")
    state: str = Field(
        description="waiting (the job has not finished), pending (queued for delivery), retrying, "
        "delivered, failed (every retry failed: ATELIER_WEBHOOK_RETRY_SECONDS) or refused (the URL "
        "resolved to an address that is not allowed at delivery)."
    )
    attempts: list[WebhookAttemptOut]


class VideoStatusOut(BaseModel):
    """A video job's clip and frames (docs/video.md); null for a still."""

    frames: int = Field(description="Frames the result will have (after resampling to fps).")
    fps: float = Field(description="The result's frame rate.")
    width: int
    height: int
    has_audio: bool = Field(description="The source has an audio track (copied into the result).")
    frames_done: int = Field(description="Frames finished and stored.")
    frame: int = Field(description="The frame being optimised now (1-based); 0 before the first.")
    progress_text: str | None = Field(description='e.g. "frame 7 of 36, step 20 of 40" while running.')
    video_url: str | None = Field(description="The result video (H.264 MP4 or VP9 WebM), once there is one.")
    input_url: str | None = Field(description="The input at the result's rate and size (before/after).")
    frames_zip_url: str | None = Field(description="Every finished frame as PNGs in a ZIP.")
    animated_url: str | None = Field(description="A small animated WebP of the result.")
    media_type: str | None = Field(description="video/mp4 or video/webm.")


def video_status(record: JobRecord) -> dict[str, Any] | None:
    """The video part of a job's status (None for a still)."""
    video = record.video
    if video is None:
        return None
    base = f"/api/jobs/{record.id}"
    made = record.has_result and "video" in record.stats
    text = None
    if record.status == "running" and record.frame:
        text = f"frame {record.frame} of {video['frames']}, step {record.step} of {record.iterations}"
    return VideoStatusOut(
        frames=video["frames"],
        fps=video["fps"],
        width=video["width"],
        height=video["height"],
        has_audio=bool(video.get("has_audio")),
        frames_done=record.frames_done,
        frame=record.frame,
        progress_text=text,
        video_url=f"{base}/video" if made else None,
        input_url=f"{base}/video/input" if made else None,
        frames_zip_url=f"{base}/frames.zip" if made else None,
        animated_url=f"{base}/animated.webp" if made else None,
        media_type=record.stats["video"]["media_type"] if made else None,
    ).model_dump()


class JobStatusOut(BaseModel):
    """A job as clients see it (GET /api/jobs/{id}, the event stream, the job page)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    status: JobStatus = Field(description="queued, running, succeeded, failed or cancelled.")
    queue_position: int | None = Field(description="1 = next to run; null unless queued.")
    step: int = Field(description="Optimisation steps done so far.")
    iterations: int = Field(description="Steps the job will run.")
    progress: float = Field(
        description="Work done, 0..1: steps weighted by their pixels (coarse-to-fine steps cost less), "
        "else step / iterations."
    )
    loss: dict[str, float] = Field(description="Latest losses: total, content, style, tv.")
    elapsed_seconds: float = Field(description="Seconds the optimisation has run.")
    eta_seconds: float | None = Field(
        description="Estimated seconds left while running (from the work done so far), else null."
    )
    preview_step: int | None = Field(description="Step the latest preview shows; null before the first.")
    preview_url: str | None = Field(description="Latest preview JPEG, once there is one.")
    result_url: str | None = Field(description="Result PNG, once there is one.")
    error: str | None = Field(description="Why the job failed or was cancelled.")
    cancel_requested: bool = Field(description="A cancel was asked for and the worker has not stopped yet.")
    created_at: str | None = Field(description="ISO 8601, UTC.")
    started_at: str | None = Field(description="ISO 8601, UTC; null until a worker starts the job.")
    finished_at: str | None = Field(description="ISO 8601, UTC; null until the job ends.")
    options: dict[str, Any] = Field(description="The options the job runs with (preset applied).")
    style_count: int = Field(description="Number of style images.")
    stats: dict[str, Any] = Field(description="When finished: engine seconds and initial/final loss.")
    attempts: int = Field(
        description="Workers that have run the job: 0 while queued, 1 normally, 2 or more when a worker "
        "crashed mid-job and the job was redelivered (it resumes from its last checkpoint)."
    )
    preemptions: int = Field(
        description="Times its worker was stopped (SIGTERM: a scale-down, a preempted machine) and handed "
        "the job back to resume elsewhere; not counted in attempts."
    )
    handed_back: bool = Field(
        description="Running, but its worker was stopped and handed it back: it waits for the next free "
        "worker, which resumes it from its last checkpoint."
    )
    storage_wait: str | None = Field(
        description="Running, but waiting for storage to work again (a full disk, S3 errors): why, e.g. "
        "'waiting for storage: no space left on device'; the job goes on by itself when it does. Null "
        "otherwise."
    )
    masks: list[bool] = Field(
        description="Per style image, whether it has a mask (shown at /jobs/{id}/masks/{index}); "
        "empty when the job has no masks."
    )
    notes: list[str] = Field(
        description="What the service changed about the uploads, e.g. a resized mask or a style image "
        "upscaled for a large picture."
    )
    style_credits: list[StyleCreditOut | None] = Field(
        description="Per style image, in order: the library painting it is (title, artist, year), or "
        "null for an uploaded image."
    )
    content_credit: ContentCreditOut | None = Field(
        description="The library's example photo the content is, or null for an uploaded photo."
    )
    batch_url: str | None = Field(
        description="The batch it belongs to (GET it for its siblings); null if none."
    )
    webhook: WebhookOut | None = Field(
        description="The job's callback, when it has one: how its delivery stands and every attempt."
    )
    video: VideoStatusOut | None = Field(None, description="A video job's clip and frames; null for a still.")
    status_url: str
    page_url: str
    content_url: str = Field(description="The stored content image (PNG).")
    cancel_url: str


# What a person reads for each status (the job page's badge, the recent jobs list), server-rendered
# and in the pages' scripts alike (app/frontend.py). "expired" is the pages' own: the server no
# longer keeps the job (its record's time to live has passed).
EXPIRED = "expired"
STATUS_LABELS: dict[str, str] = {
    "queued": "Queued",
    "running": "Running",
    "succeeded": "Done",
    "failed": "Failed",
    "cancelled": "Cancelled",
    EXPIRED: "Expired",
}


def job_urls(job_id: str) -> dict[str, str]:
    """Where a client finds the job (paths relative to the server root)."""
    return {
        "status_url": f"/api/jobs/{job_id}",
        "page_url": f"/jobs/{job_id}",
        "content_url": f"/api/jobs/{job_id}/content",
        "cancel_url": f"/api/jobs/{job_id}/cancel",
    }


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def webhook_status(record: JobRecord, store: JobStore) -> dict[str, Any] | None:
    """The job's webhook as its status shows it (None without a callback)."""
    if not record.callback_url:
        return None
    return webhook_view(record.callback_url, record.webhook_state, store.webhook_attempts(record.id))


def webhook_view(callback_url: str, state: str, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """A job's or a batch's webhook as a status shows it: the URL's host only, its state, attempts."""
    shown = [
        {
            "attempt": int(attempt["attempt"]),
            "at": _iso(float(attempt["at"])),
            "outcome": attempt["outcome"],
            "status_code": attempt.get("status_code"),
            "error": attempt.get("error"),
            "seconds": float(attempt.get("seconds", 0.0)),
        }
        for attempt in attempts
    ]
    host = urlsplit(callback_url).netloc.rpartition("@")[2]
    return {"host": host, "state": state or "waiting", "attempts": shown}


def public_status(record: JobRecord, store: JobStore) -> dict[str, Any]:
    """The job as clients see it: progress 0..1, ETA, URLs of the preview and result when they exist."""
    iterations = record.iterations or int(record.options.get("iterations", 0))
    step = record.step
    # Work, not steps: with coarse-to-fine scales the first steps are far cheaper (core/progress.py).
    work = record.work if record.work is not None else (min(step / iterations, 1.0) if iterations else 0.0)
    progress = 1.0 if record.status == "succeeded" else work
    eta_seconds = None
    if record.status == "running" and step > 0:
        eta_seconds = eta_seconds_left(work, record.elapsed, record.work_before)
    preview_url = None
    if record.preview_step is not None:
        # The step in the query string makes each new preview a new URL (no stale browser cache).
        preview_url = f"/api/jobs/{record.id}/preview?step={record.preview_step}"
    return JobStatusOut(
        id=record.id,
        status=record.status,
        queue_position=store.queue_position(record.id) if record.status == "queued" else None,
        step=step,
        iterations=iterations,
        progress=round(progress, 4),
        loss=record.loss,
        elapsed_seconds=round(record.elapsed, 2),
        eta_seconds=eta_seconds,
        preview_step=record.preview_step,
        preview_url=preview_url,
        result_url=f"/api/jobs/{record.id}/result" if record.has_result else None,
        error=record.error,
        cancel_requested=record.cancel_requested,
        created_at=_iso(record.created_at),
        started_at=_iso(record.started_at),
        finished_at=_iso(record.finished_at),
        options=record.options,
        style_count=record.style_count,
        stats=record.stats,
        attempts=record.attempts,
        preemptions=record.preemptions,
        handed_back=record.handed_back and record.status == "running",
        storage_wait=record.storage_wait if record.status == "running" else None,
        masks=list(record.masks),
        notes=list(record.notes),
        style_credits=list(record.style_credits) or [None] * record.style_count,
        content_credit=record.content_credit,
        batch_url=f"/api/batches/{record.batch_id}" if record.batch_id else None,
        webhook=webhook_status(record, store),
        video=video_status(record),
        **job_urls(record.id),
    ).model_dump()
