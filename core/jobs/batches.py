"""Batches: content × style jobs submitted together (POST /api/batches). Each job is an ordinary job
(its own record, page, checkpoints and resume); the batch record only ties them together: which job
is which cell of the grid, the names of its contents and styles, its token and callback.

The record expires with its jobs (job_ttl_seconds after submission plus the broker's visibility
timeout, at least as long as any of its jobs can live); a job that expired first reads as missing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import WatchError

from core.jobs.keys import batch_key, batch_webhook_attempts_key, is_job_id, job_key
from core.settings import get_settings

WEBHOOK_WAITING = "waiting"


@dataclass(frozen=True)
class BatchRecord:
    id: str
    created_at: float
    job_ids: tuple[str, ...]  # in grid order
    cells: tuple[tuple[int, int], ...]  # per job: (content index, style index)
    contents: tuple[str, ...]  # the contents' names (their file names, made unique)
    styles: tuple[str, ...]
    token_hash: str = ""
    submitter: str = ""
    callback_url: str = ""
    base_url: str = ""
    webhook_state: str = ""


class BatchStore:
    """Batch records in the job store's Redis."""

    def __init__(self, redis: Redis, ttl_seconds: int | None = None) -> None:
        self.redis = redis
        if ttl_seconds is None:  # as long as any of its jobs can live: queued, run, then kept
            settings = get_settings()
            ttl_seconds = settings.job_ttl_seconds + settings.broker_visibility_timeout
        self.ttl_seconds = ttl_seconds

    def create(
        self,
        batch_id: str,
        job_ids: Sequence[str],
        cells: Sequence[tuple[int, int]],
        contents: Sequence[str],
        styles: Sequence[str],
        *,
        token_hash: str = "",
        submitter: str = "",
        callback: tuple[str, str] | None = None,
    ) -> BatchRecord:
        fields = {
            "created_at": repr(time.time()),
            "jobs": json.dumps(list(job_ids)),
            "cells": json.dumps([list(cell) for cell in cells]),
            "contents": json.dumps(list(contents)),
            "styles": json.dumps(list(styles)),
            "token_hash": token_hash,
            "submitter": submitter,
        }
        if callback is not None:
            fields |= {"callback_url": callback[0], "base_url": callback[1], "webhook_state": WEBHOOK_WAITING}
        with self.redis.pipeline() as pipe:
            pipe.hset(batch_key(batch_id), mapping=fields)
            pipe.expire(batch_key(batch_id), self.ttl_seconds)
            pipe.execute()
        record = self.get(batch_id)
        assert record is not None  # just written
        return record

    def get(self, batch_id: str) -> BatchRecord | None:
        """The batch, or None when the id is malformed, unknown or expired."""
        if not is_job_id(batch_id):
            return None
        raw = self.redis.hgetall(batch_key(batch_id))
        if not raw:
            return None
        return BatchRecord(
            id=batch_id,
            created_at=float(raw["created_at"]),
            job_ids=tuple(json.loads(raw["jobs"])),
            cells=tuple((int(c), int(s)) for c, s in json.loads(raw["cells"])),
            contents=tuple(json.loads(raw["contents"])),
            styles=tuple(json.loads(raw["styles"])),
            token_hash=raw.get("token_hash", ""),
            submitter=raw.get("submitter", ""),
            callback_url=raw.get("callback_url", ""),
            base_url=raw.get("base_url", ""),
            webhook_state=raw.get("webhook_state", ""),
        )

    def delete(self, batch_id: str) -> None:
        self.redis.delete(batch_key(batch_id), batch_webhook_attempts_key(batch_id))

    def webhook_due(self, batch_id: str) -> bool:
        """Every job of the batch is finished (or gone) and its callback not yet sent: marks it
        pending and returns True, once (WATCH/MULTI: two workers finishing its last jobs at once
        cannot both send it)."""
        key = batch_key(batch_id)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key)
                if pipe.hget(key, "webhook_state") != WEBHOOK_WAITING:
                    return False
                for job_id in json.loads(pipe.hget(key, "jobs") or "[]"):
                    if pipe.hget(job_key(job_id), "status") in ("queued", "running"):
                        return False
                pipe.multi()
                pipe.hset(key, "webhook_state", "pending")
                pipe.execute()
                return True
            except WatchError:  # another caller changed it first
                return False

    def record_webhook_attempt(self, batch_id: str, attempt: dict[str, Any], state: str) -> bool:
        """Append one delivery attempt of the batch's webhook and set its state (False: batch gone)."""
        key, attempts = batch_key(batch_id), batch_webhook_attempts_key(batch_id)
        if not self.redis.exists(key):
            return False
        with self.redis.pipeline() as pipe:
            pipe.rpush(attempts, json.dumps(attempt))
            pipe.hset(key, "webhook_state", state)
            pipe.expire(attempts, self.ttl_seconds)
            pipe.execute()
        return True

    def webhook_attempts(self, batch_id: str) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.redis.lrange(batch_webhook_attempts_key(batch_id), 0, -1)]
