"""Response models of the JSON API: they document every field in the OpenAPI page (/docs).

A job's status (JobStatusOut) lives in app/status.py, beside the one function that builds it."""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.jobs import JobStatus


class ErrorOut(BaseModel):
    detail: str = Field(
        description="What is wrong, for a person; names the field at fault when there is one."
    )


class JobCreatedOut(BaseModel):
    id: str = Field(description="Job id: 32 hexadecimal characters.")
    status: JobStatus = Field(
        description="'queued' for a new job; a replayed Idempotency-Key answers the job's current status."
    )
    token: str = Field(
        description="Shown only here: send it as X-Job-Token (or Authorization: Bearer) to cancel or "
        "delete the job. The response also sets it as an HttpOnly cookie for the job's paths."
    )
    status_url: str = Field(description="GET it for the job's status (JSON).")
    page_url: str = Field(description="The job's page in a browser.")


class WorkerOut(BaseModel):
    hostname: str
    last_seen: str = Field(description="ISO 8601, UTC.")
    seconds_ago: float


class ReadyOut(BaseModel):
    status: str = Field(
        description="'ready' when Redis, storage and the engine work, else 'unavailable' (HTTP 503)."
    )
    redis: str = Field(description="'ok' or the error.")
    storage: str = Field(description="'ok' or the error.")
    engine: str = Field(
        description="'ok', or 'error: REASON' when every live worker that reported failed to load its "
        "VGG19 weights (jobs would fail): the first such worker's reason."
    )
    worker_seen: bool = Field(description="A worker sent a heartbeat in the last minute.")
    workers: list[WorkerOut] = Field(description="Workers this Redis has seen, newest first.")
