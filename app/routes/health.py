"""Liveness (/healthz) and readiness (/readyz: Redis, storage, when a worker was last seen)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.deps import JobStoreDep, StorageDep
from app.schemas import ReadyOut
from core.jobs import WORKER_FRESH_SECONDS

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The web process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Redis and storage work; when workers were last seen",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "Redis or storage does not work."}},
)
def readyz(store: JobStoreDep, storage: StorageDep) -> JSONResponse:
    body: dict[str, Any] = {"redis": "ok", "storage": "ok", "worker_seen": False, "workers": []}
    try:
        store.redis.ping()
        now = time.time()
        seen = sorted(store.workers_last_seen().items(), key=lambda item: -item[1])
        body["workers"] = [
            {
                "hostname": name,
                "last_seen": datetime.fromtimestamp(at, UTC).isoformat(),
                "seconds_ago": round(now - at, 1),
            }
            for name, at in seen
        ]
        body["worker_seen"] = any(now - at < WORKER_FRESH_SECONDS for _, at in seen)
    except Exception as error:
        logger.warning("readyz: Redis check failed: %s", error)
        body["redis"] = f"error: {error}"
    try:
        storage.check_writable()
    except Exception as error:
        logger.warning("readyz: storage check failed: %s", error)
        body["storage"] = f"error: {error}"
    ready = body["redis"] == "ok" and body["storage"] == "ok"
    body["status"] = "ready" if ready else "unavailable"
    return JSONResponse(body, status_code=200 if ready else 503)
