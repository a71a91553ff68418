"""The public view of a job: the JSON of GET /api/jobs/{id}, also pushed by the SSE route.

Plain functions over the job store, so any route (JSON, SSE, HTML page) builds the same dict.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.jobs import JobRecord, JobStore


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


def public_status(record: JobRecord, store: JobStore) -> dict[str, Any]:
    """The job as clients see it: progress 0..1, ETA, URLs of the preview and result when they exist."""
    iterations = record.iterations or int(record.options.get("iterations", 0))
    step = record.step
    progress = 1.0 if record.status == "succeeded" else (min(step / iterations, 1.0) if iterations else 0.0)
    eta_seconds = None
    if record.status == "running" and step > 0 and record.elapsed > 0:
        eta_seconds = round(record.elapsed / step * max(iterations - step, 0), 1)
    preview_url = None
    if record.preview_step is not None:
        # The step in the query string makes each new preview a new URL (no stale browser cache).
        preview_url = f"/api/jobs/{record.id}/preview?step={record.preview_step}"
    return {
        "id": record.id,
        "status": record.status,
        "queue_position": store.queue_position(record.id) if record.status == "queued" else None,
        "step": step,
        "iterations": iterations,
        "progress": round(progress, 4),
        "loss": record.loss,
        "elapsed_seconds": round(record.elapsed, 2),
        "eta_seconds": eta_seconds,
        "preview_step": record.preview_step,
        "preview_url": preview_url,
        "result_url": f"/api/jobs/{record.id}/result" if record.has_result else None,
        "error": record.error,
        "cancel_requested": record.cancel_requested,
        "created_at": _iso(record.created_at),
        "started_at": _iso(record.started_at),
        "finished_at": _iso(record.finished_at),
        "options": record.options,
        "style_count": record.style_count,
        "stats": record.stats,
        "attempts": record.attempts,
        "masks": list(record.masks),
        "notes": list(record.notes),
        **job_urls(record.id),
    }
