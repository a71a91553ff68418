"""Server-Sent Events: GET /api/jobs/{id}/events pushes the job's status JSON whenever it changes.

Each event's data is exactly the JSON of GET /api/jobs/{id} (app.status.public_status). The route is
an async generator served by FastAPI's Server-Sent Events support (fastapi.sse: the wire format, the
text/event-stream headers, and the end of the generator when the client goes away). It polls the job
store every POLL_SECONDS in a worker thread (the Redis client is synchronous, so the event loop never
blocks), sends an event only when the status changed, a `: heartbeat` comment when nothing changed
for HEARTBEAT_SECONDS (so proxies keep the connection open), and ends after a final state (with
`event: end`) or after ATELIER_EVENT_STREAM_SECONDS (without it: the browser reconnects and gets the
current state at once).
Polling Redis keeps the worker simple (it only writes the job record) at the price of one small read
per open page every quarter second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from app.deps import ExistingJob, JobStoreDep
from app.status import public_status
from core.jobs import FINISHED, JobStore
from core.settings import get_settings

router = APIRouter(tags=["jobs"])

POLL_SECONDS = 0.25
HEARTBEAT_SECONDS = 10.0
# A stream ends after settings.event_stream_seconds and the browser's EventSource reconnects on its
# own (after RETRY_MILLISECONDS). ASGI tells a running response nothing when the server shuts down, so
# without a limit one open job page would hold uvicorn's graceful shutdown (Ctrl-C) until the job
# finished.
RETRY_MILLISECONDS = 500


def _current_status(store: JobStore, job_id: str) -> dict[str, Any] | None:
    record = store.get(job_id)
    return None if record is None else public_status(record, store)


@router.get(
    "/api/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "An event stream: each `data:` line is the JSON of GET /api/jobs/{id}, sent when "
            "it changes; a final `event: end` after a finished state; `: heartbeat` comments in between.",
        },
        404: {"description": "No job with this id (unknown, malformed or expired)."},
    },
)
async def job_events(job: ExistingJob, store: JobStoreDep) -> AsyncIterator[ServerSentEvent]:
    """Live status of a job as Server-Sent Events (the job page's progress transport)."""
    yield ServerSentEvent(retry=RETRY_MILLISECONDS)
    status = await run_in_threadpool(public_status, job, store)
    last_sent: dict[str, Any] | None = None
    started = last_sent_at = time.monotonic()
    max_seconds = get_settings().event_stream_seconds
    while status is not None:
        if status != last_sent:
            yield ServerSentEvent(data=status)
            last_sent, last_sent_at = status, time.monotonic()
        elif time.monotonic() - last_sent_at >= HEARTBEAT_SECONDS:
            yield ServerSentEvent(comment="heartbeat")
            last_sent_at = time.monotonic()
        if status["status"] in FINISHED:
            # Tell the page the stream ends on purpose, so it does not reconnect.
            yield ServerSentEvent(data={"status": status["status"]}, event="end")
            return
        await asyncio.sleep(POLL_SECONDS)
        if time.monotonic() - started > max_seconds:
            return
        status = await run_in_threadpool(_current_status, store, job.id)
    # The record expired while the page was open.
    yield ServerSentEvent(data={"status": "expired"}, event="end")
