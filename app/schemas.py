"""Response models of the JSON API: they document every field in the OpenAPI page (/docs)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from core.jobs import JobStatus


class ErrorOut(BaseModel):
    detail: str = Field(
        description="What is wrong, for a person; names the field at fault when there is one."
    )


class JobCreatedOut(BaseModel):
    id: str = Field(description="Job id: 32 hexadecimal characters.")
    status: JobStatus = Field(description="Always 'queued' for a new job.")
    token: str = Field(
        description="Shown only here: send it as X-Job-Token (or Authorization: Bearer) to cancel or "
        "delete the job. The response also sets it as an HttpOnly cookie for the job's paths."
    )
    status_url: str = Field(description="GET it for the job's status (JSON).")
    page_url: str = Field(description="The job's page in a browser.")


class JobStatusOut(BaseModel):
    id: str
    status: JobStatus = Field(description="queued, running, succeeded, failed or cancelled.")
    queue_position: int | None = Field(description="1 = next to run; null unless queued.")
    step: int = Field(description="Optimisation steps done so far.")
    iterations: int = Field(description="Steps the job will run.")
    progress: float = Field(description="step / iterations, 0..1.")
    loss: dict[str, float] = Field(description="Latest losses: total, content, style, tv.")
    elapsed_seconds: float = Field(description="Seconds the optimisation has run.")
    eta_seconds: float | None = Field(description="Estimated seconds left while running, else null.")
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
    masks: list[bool] = Field(
        description="Per style image, whether it has a mask (shown at /jobs/{id}/masks/{index}); "
        "empty when the job has no masks."
    )
    notes: list[str] = Field(description="What the service changed about the uploads, e.g. a resized mask.")
    status_url: str
    page_url: str
    content_url: str = Field(description="The stored content image (PNG).")
    cancel_url: str


class WorkerOut(BaseModel):
    hostname: str
    last_seen: str = Field(description="ISO 8601, UTC.")
    seconds_ago: float


class ReadyOut(BaseModel):
    status: str = Field(description="'ready' when Redis and storage work, else 'unavailable' (HTTP 503).")
    redis: str = Field(description="'ok' or the error.")
    storage: str = Field(description="'ok' or the error.")
    worker_seen: bool = Field(description="A worker sent a heartbeat in the last minute.")
    workers: list[WorkerOut] = Field(description="Workers this Redis has seen, newest first.")
