"""Liveness (/healthz) and readiness (/readyz: Redis, storage, the workers' engines, when a worker was
last seen)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.deps import JobStoreDep, StorageDep
from app.engine_state import engine_problem
from app.schemas import ReadyOut
from core.jobs import WORKER_FRESH_SECONDS

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The web process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Redis, storage and the workers' engines work; when workers were last seen",
    response_model=ReadyOut,
    responses={
        503: {
            "model": ReadyOut,
            "description": "Redis or storage does not work, or no live worker could load its VGG19 weights.",
        }
    },
)
def readyz(store: JobStoreDep, storage: StorageDep) -> JSONResponse:
    body: dict[str, Any] = {
        "redis": "ok",
        "storage": "ok",
        "engine": "ok",
        "worker_seen": False,
        "workers": [],
    }
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
        problem = engine_problem(store)
        if problem is not None:
            logger.warning("readyz: no worker can run jobs: %s", problem)
            body["engine"] = f"error: {problem}"
    except Exception as error:
        logger.warning("readyz: Redis check failed: %s", error)
        body["redis"] = f"error: {error}"
    try:
        storage.check_writable()
    except Exception as error:
        logger.warning("readyz: storage check failed: %s", error)
        body["storage"] = f"error: {error}"
    ready = body["redis"] == "ok" and body["storage"] == "ok" and body["engine"] == "ok"
    body["status"] = "ready" if ready else "unavailable"
    return JSONResponse(body, status_code=200 if ready else 503)
