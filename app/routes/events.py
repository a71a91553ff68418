"""Server-Sent Events: GET /api/jobs/{id}/events pushes the job's status JSON whenever it changes.

Each event's data is exactly the JSON of GET /api/jobs/{id} (app.status.public_status). The route
polls the job store every POLL_SECONDS in a worker thread (the Redis client is synchronous, so the
event loop never blocks), sends an event only when the JSON changed, a comment line as a heartbeat
when nothing changed for HEARTBEAT_SECONDS (so proxies keep the connection open), and ends after a
final state (with `event: end`) or after ATELIER_EVENT_STREAM_SECONDS (without it: the browser
reconnects).
Polling Redis keeps the worker simple (it only writes the job record) at the price of one small read
per open page every quarter second.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.errors import JOB_NOT_FOUND
from app.status import public_status
from core.jobs import FINISHED, get_job_store
from core.settings import get_settings

router = APIRouter(tags=["jobs"])

POLL_SECONDS = 0.25
HEARTBEAT_SECONDS = 10.0
# A stream ends after settings.event_stream_seconds and the browser's EventSource reconnects on its
# own (after RETRY_MILLISECONDS). ASGI tells a running response nothing when the server shuts down, so
# without a limit one open job page would hold uvicorn's graceful shutdown (Ctrl-C) until the job
# finished.
RETRY_MILLISECONDS = 500


def _current_status(job_id: str) -> dict[str, Any] | None:
    store = get_job_store()
    record = store.get(job_id)
    return None if record is None else public_status(record, store)


def _event(payload: str, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n"


async def _status_events(request: Request, job_id: str, first: dict[str, Any]) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MILLISECONDS}\n\n"
    status: dict[str, Any] | None = first
    last_payload = ""
    started = last_sent = time.monotonic()
    max_seconds = get_settings().event_stream_seconds
    while status is not None:
        payload = json.dumps(status, separators=(",", ":"))
        if payload != last_payload:
            yield _event(payload)
            last_payload, last_sent = payload, time.monotonic()
        elif time.monotonic() - last_sent >= HEARTBEAT_SECONDS:
            yield ": heartbeat\n\n"
            last_sent = time.monotonic()
        if status["status"] in FINISHED:
            # Tell the page the stream ends on purpose, so it does not reconnect.
            yield _event(json.dumps({"status": status["status"]}), event="end")
            return
        await asyncio.sleep(POLL_SECONDS)
        if await request.is_disconnected() or time.monotonic() - started > max_seconds:
            return
        status = await run_in_threadpool(_current_status, job_id)
    # The record expired while the page was open.
    yield _event(json.dumps({"status": "expired"}), event="end")


@router.get(
    "/api/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "An event stream: each `data:` line is the JSON of GET /api/jobs/{id}, sent when "
            "it changes; a final `event: end` after a finished state; `: heartbeat` comments in between.",
        },
        404: {"description": "No job with this id (unknown, malformed or expired)."},
    },
)
async def job_events(request: Request, job_id: str) -> StreamingResponse:
    """Live status of a job as Server-Sent Events (the job page's progress transport)."""
    first = await run_in_threadpool(_current_status, job_id)
    if first is None:
        raise HTTPException(status_code=404, detail=JOB_NOT_FOUND)
    return StreamingResponse(
        _status_events(request, job_id, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
