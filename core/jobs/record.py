"""What the job store hands out: a job's record (decoded from its Redis hash) and a delivery's claim."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

# Written by workers before the flag had its one name (JobStore.release): read as handed_back, so a job
# handed back by an old worker during a rolling upgrade is still resumed without counting an attempt
# (docs/reliability.md, "Upgrades"). The Lua scripts read it too.
LEGACY_HANDED_BACK_FIELD = "handed_over"


@dataclass(frozen=True)
class JobRecord:
    """One job as stored in Redis. Times are Unix seconds (float) or None."""

    id: str
    status: JobStatus
    options: dict[str, Any]
    style_count: int
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    step: int = 0
    iterations: int = 0
    loss: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    preview_step: int | None = None
    has_result: bool = False
    error: str | None = None
    worker: str | None = None
    cancel_requested: bool = False
    stats: dict[str, Any] = field(default_factory=dict)  # set when finished: engine seconds, losses
    attempts: int = 0  # deliveries that ran it: 1 normally, 2+ after a worker crashed mid-job
    checkpoint_step: int = 0  # step of the image saved under storage.checkpoint_key (0: none)
    preemptions: int = 0  # times its worker was stopped (SIGTERM) and handed it back; not attempts
    handed_back: bool = False  # handed back (release) and not yet taken by the next worker
    masks: tuple[bool, ...] = ()  # per style image: whether it has a mask (storage.mask_key); (): none
    notes: tuple[str, ...] = ()  # what the service changed about the upload, for people (a resized mask)
    # Per style image: the library painting it is ({id, title, artist, year, licence}), or None for an
    # upload; () for a job created before the library existed (all uploads).
    style_credits: tuple[dict[str, str] | None, ...] = ()
    # The library's example photo the content is ({id, title, credit, licence}), or None.
    content_credit: dict[str, str] | None = None
    work: float | None = None  # fraction of the run's work done (pixel-steps, core/progress.py)
    # The fraction done before this run began: a resumed job's checkpoint (its ETA counts the pace of
    # this run only, whose ``elapsed`` starts at the resume).
    work_before: float = 0.0
    # Why the running job waits for storage ("no space left on device"); None while it does not.
    storage_wait: str | None = None
    # The checkpoint holds the finished result (after the last step), not an image to optimise on.
    checkpoint_final: bool = False
    # Webhooks (core/webhooks.py): where the finished job's event goes ("" for none), the base of its
    # absolute URLs, and how its delivery stands: waiting (job not finished), pending, retrying,
    # delivered, failed (given up) or refused (the URL was not allowed at delivery).
    callback_url: str = ""
    base_url: str = ""
    webhook_state: str = ""
    batch_id: str = ""  # the batch it belongs to ("" for a job of its own)
    # A video job (docs/video.md): the clip as probed ({width, height, frames, fps, source_fps,
    # has_audio, codec}), or None for a still; the frames finished (each in storage.frame_key) and
    # the frame being optimised now.
    video: dict[str, Any] | None = None
    frames_done: int = 0
    frame: int = 0

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def decode_record(job_id: str, raw: dict[str, str], cancel_requested: bool) -> JobRecord:
    """The record from its hash (HGETALL of job_key), every field as the store writes it."""

    def number(name: str) -> float | None:
        value = raw.get(name)
        return float(value) if value not in (None, "") else None

    preview_step = raw.get("preview_step")
    return JobRecord(
        id=job_id,
        status=raw["status"],  # type: ignore[arg-type]
        options=json.loads(raw.get("options", "{}")),
        style_count=int(raw.get("style_count", "0")),
        created_at=float(raw["created_at"]),
        started_at=number("started_at"),
        finished_at=number("finished_at"),
        step=int(raw.get("step", "0")),
        iterations=int(raw.get("iterations", "0")),
        loss=json.loads(raw.get("loss", "{}")),
        elapsed=float(raw.get("elapsed", "0")),
        preview_step=int(preview_step) if preview_step else None,
        has_result=raw.get("has_result") == "1",
        error=raw.get("error") or None,
        worker=raw.get("worker") or None,
        cancel_requested=cancel_requested,
        stats=json.loads(raw.get("stats", "{}")),
        attempts=int(raw.get("attempts") or 0),
        checkpoint_step=int(raw.get("checkpoint_step") or 0),
        storage_wait=raw.get("storage_wait") or None,
        checkpoint_final=raw.get("checkpoint_final") == "1",
        preemptions=int(raw.get("preemptions") or 0),
        handed_back="1" in (raw.get("handed_back"), raw.get(LEGACY_HANDED_BACK_FIELD)),
        masks=tuple(json.loads(raw.get("masks") or "[]")),
        notes=tuple(json.loads(raw.get("notes") or "[]")),
        style_credits=tuple(json.loads(raw.get("style_credits") or "[]")),
        content_credit=json.loads(raw.get("content_credit") or "null"),
        work=number("work"),
        work_before=number("work_before") or 0.0,
        callback_url=raw.get("callback_url", ""),
        base_url=raw.get("base_url", ""),
        webhook_state=raw.get("webhook_state", ""),
        batch_id=raw.get("batch_id", ""),
        video=json.loads(raw.get("video") or "null"),
        frames_done=int(raw.get("frames_done") or 0),
        frame=int(raw.get("frame") or 0),
    )


class ClaimOutcome(StrEnum):
    """What a delivery of a job may do (JobStore.claim); the values are what claim.lua returns."""

    STARTED = "started"  # queued -> running, attempt 1
    # The job was running but its worker's lease lapsed (the worker died): this delivery takes it over
    # as attempt ``attempts``; or its worker was stopped and handed it back (``handed_back``), then
    # ``attempts`` stays as it was.
    RESUMED = "resumed"
    LEASED = "leased"  # another worker holds a live lease until ``lease_until``: leave the job to it
    EXHAUSTED = "exhausted"  # it already ran ``attempts`` times (the cap): fail it
    FINISHED = "finished"  # nothing to do
    MISSING = "missing"  # no such job (expired or deleted): nothing to do


@dataclass(frozen=True)
class Claim:
    """A delivery's claim of a job (JobStore.claim): its outcome and what goes with it."""

    outcome: ClaimOutcome
    attempts: int = 0
    lease_until: float = 0.0
    handed_back: bool = False  # RESUMED after its stopping worker handed it back (JobStore.release)
