"""The public view of a batch, defined once: GET /api/batches/{id}, its event stream and its page."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.status import WebhookOut, _iso, webhook_view
from core.jobs import FINISHED, BatchRecord, BatchStore, JobStore

EXPIRED = "expired"  # a job of the batch whose record is gone (deleted, or past its time to live)


class BatchJobOut(BaseModel):
    id: str
    content: int = Field(description="Index (0-based) of its content image in `contents`.")
    style: int = Field(description="Index (0-based) of its style image in `styles`.")
    status: str = Field(description="The job's status, or 'expired' when it is no longer kept.")
    step: int
    iterations: int
    progress: float
    result_url: str | None
    preview_url: str | None
    error: str | None
    page_url: str
    content_url: str
    style_url: str


class BatchStatusOut(BaseModel):
    id: str
    status: str = Field(description="queued (no job started), running, or finished (every job ended).")
    created_at: str | None
    contents: list[str] = Field(description="The content images' names (rows of the contact sheet).")
    styles: list[str] = Field(description="The style images' names (its columns).")
    totals: dict[str, int] = Field(
        description="jobs, and how many are queued, running, succeeded, failed, cancelled, expired."
    )
    progress: float = Field(description="0..1: the jobs' work done, a finished job counting as done.")
    jobs: list[BatchJobOut] = Field(description="Every job, in grid order (content by content).")
    webhook: WebhookOut | None = Field(
        description="The batch's callback (one event once every job has ended), as a job's webhook."
    )
    status_url: str
    page_url: str
    download_url: str = Field(description="A ZIP of the finished results, as they are now.")
    cancel_url: str


def batch_urls(batch_id: str) -> dict[str, str]:
    return {
        "status_url": f"/api/batches/{batch_id}",
        "page_url": f"/batches/{batch_id}",
        "download_url": f"/api/batches/{batch_id}/download",
        "cancel_url": f"/api/batches/{batch_id}/cancel",
    }


def batch_status(batch: BatchRecord, store: JobStore) -> dict[str, Any]:
    """The batch as clients see it: each job's state and the totals."""
    jobs = []
    for job_id, (content, style) in zip(batch.job_ids, batch.cells, strict=True):
        record = store.get(job_id)
        urls = {
            "page_url": f"/jobs/{job_id}",
            "content_url": f"/api/jobs/{job_id}/content",
            "style_url": f"/jobs/{job_id}/styles/0",
        }
        if record is None:
            gone = {"status": EXPIRED, "step": 0, "iterations": 0, "progress": 0.0, "error": None}
            jobs.append(
                {"id": job_id, "content": content, "style": style, "result_url": None, "preview_url": None}
                | gone
                | urls
            )
            continue
        iterations = record.iterations or int(record.options.get("iterations", 0))
        work = record.work if record.work is not None else (record.step / iterations if iterations else 0.0)
        jobs.append(
            {
                "id": job_id,
                "content": content,
                "style": style,
                "status": record.status,
                "step": record.step,
                "iterations": iterations,
                "progress": 1.0 if record.status == "succeeded" else round(min(work, 1.0), 4),
                "result_url": f"/api/jobs/{job_id}/result" if record.has_result else None,
                "preview_url": f"/api/jobs/{job_id}/preview?step={record.preview_step}"
                if record.preview_step is not None
                else None,
                "error": record.error,
                **urls,
            }
        )
    statuses = [job["status"] for job in jobs]
    totals = {"jobs": len(jobs)} | {
        name: statuses.count(name)
        for name in ("queued", "running", "succeeded", "failed", "cancelled", EXPIRED)
    }
    ended = [status in FINISHED or status == EXPIRED for status in statuses]
    if all(ended):
        overall = "finished"
    elif all(status == "queued" for status in statuses):
        overall = "queued"
    else:
        overall = "running"
    done = sum(1.0 if finished else job["progress"] for job, finished in zip(jobs, ended, strict=True))
    return BatchStatusOut(
        id=batch.id,
        status=overall,
        created_at=_iso(batch.created_at),
        contents=list(batch.contents),
        styles=list(batch.styles),
        totals=totals,
        progress=round(done / len(jobs), 4) if jobs else 1.0,
        jobs=[BatchJobOut(**job) for job in jobs],
        webhook=webhook_view(
            batch.callback_url, batch.webhook_state, BatchStore(store.redis).webhook_attempts(batch.id)
        )
        if batch.callback_url
        else None,
        **batch_urls(batch.id),
    ).model_dump()
