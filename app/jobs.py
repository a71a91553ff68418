"""The job store: every Redis key Atelier uses lives in this module.

Keys (prefix ``atelier:``):
  job:{id}          hash, the job record (see JobRecord); expires job_ttl_seconds after it finishes
  job:{id}:cancel   string "1" while a cancel has been requested
  queue             sorted set of queued job ids, scored by submission time (for queue_position)
  finished          sorted set of finished job ids, scored by finish time (their files are deleted
                    once the record's TTL has passed: see expired_job_ids)
  worker:last_seen  hash {hostname: unix time} of worker heartbeats (for /readyz)

State changes that race between the web and a worker (queued -> running, queued -> cancelled) are
single Lua scripts, so a job cancelled while queued can never also start.
Used by the web app and the worker alike, so no FastAPI import here.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from redis import Redis

from app.settings import get_settings

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

_JOB_ID = re.compile(r"[0-9a-f]{32}")
PREFIX = "atelier:"
QUEUE_KEY = PREFIX + "queue"
FINISHED_KEY = PREFIX + "finished"
WORKERS_KEY = PREFIX + "worker:last_seen"
WORKER_HEARTBEAT_SECONDS = 10.0  # how often a worker process writes its heartbeat
WORKER_FRESH_SECONDS = 60.0  # /readyz counts a worker as seen if it beat this recently


def new_job_id() -> str:
    """A fresh job id: 32 lowercase hex characters, unguessable."""
    return secrets.token_hex(16)


def is_job_id(value: str) -> bool:
    """True when value has the exact shape of a job id (so it is safe inside keys and paths)."""
    return isinstance(value, str) and _JOB_ID.fullmatch(value) is not None


def job_key(job_id: str) -> str:
    if not is_job_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return f"{PREFIX}job:{job_id}"


def cancel_key(job_id: str) -> str:
    return job_key(job_id) + ":cancel"


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

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def _decode(job_id: str, raw: dict[str, str], cancel_requested: bool) -> JobRecord:
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
    )


# queued -> running, only if still queued. KEYS: job, queue; ARGV: id, now, worker.
_START = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[2], 'worker', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""

# Cancel. KEYS: job, cancel flag, queue, finished; ARGV: id, now, ttl.
# Returns the status the job had: queued jobs become cancelled at once; running ones get the flag.
_CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[2],
             'error', 'cancelled before it started')
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
elseif status == 'running' then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
end
return status
"""


class JobStore:
    """Job records, progress, cancel flags, queue order and worker heartbeats in one Redis."""

    def __init__(self, redis: Redis, ttl_seconds: int | None = None) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds if ttl_seconds is not None else get_settings().job_ttl_seconds
        self._start = redis.register_script(_START)
        self._cancel = redis.register_script(_CANCEL)

    # --- creating and reading ------------------------------------------------------------------
    def create(self, job_id: str, options: dict[str, Any], style_count: int) -> JobRecord:
        """Store a new queued job and put it at the back of the queue order."""
        now = time.time()
        fields = {
            "status": "queued",
            "options": json.dumps(options),
            "style_count": str(style_count),
            "created_at": repr(now),
            "iterations": str(options.get("iterations", 0)),
            "step": "0",
        }
        with self.redis.pipeline() as pipe:
            pipe.hset(job_key(job_id), mapping=fields)
            pipe.zadd(QUEUE_KEY, {job_id: now})
            pipe.execute()
        record = self.get(job_id)
        assert record is not None  # just written
        return record

    def get(self, job_id: str) -> JobRecord | None:
        """The job, or None when the id is malformed, unknown or expired."""
        if not is_job_id(job_id):
            return None
        with self.redis.pipeline() as pipe:
            pipe.hgetall(job_key(job_id))
            pipe.exists(cancel_key(job_id))
            raw, cancel_flag = pipe.execute()
        if not raw:
            return None
        return _decode(job_id, raw, bool(cancel_flag))

    def delete(self, job_id: str) -> None:
        """Forget a job entirely (used to undo a submission that could not be enqueued)."""
        with self.redis.pipeline() as pipe:
            pipe.delete(job_key(job_id), cancel_key(job_id))
            pipe.zrem(QUEUE_KEY, job_id)
            pipe.zrem(FINISHED_KEY, job_id)
            pipe.execute()

    def queue_position(self, job_id: str) -> int | None:
        """1 for the next job a worker will take, 2 for the one after, ...; None if not queued."""
        rank = self.redis.zrank(QUEUE_KEY, job_id)
        return None if rank is None else int(rank) + 1

    # --- state changes ---------------------------------------------------------------------------
    def start(self, job_id: str, worker: str) -> bool:
        """queued -> running. False (and nothing changed) when the job is not queued any more."""
        return bool(self._start(keys=[job_key(job_id), QUEUE_KEY], args=[job_id, repr(time.time()), worker]))

    def request_cancel(self, job_id: str) -> str | None:
        """Cancel a job: a queued one is cancelled now, a running one is asked to stop.

        Returns the status the job had before (None if it does not exist); finished jobs are left as
        they are.
        """
        status = self._cancel(
            keys=[job_key(job_id), cancel_key(job_id), QUEUE_KEY, FINISHED_KEY],
            args=[job_id, repr(time.time()), self.ttl_seconds],
        )
        return status or None

    def cancel_requested(self, job_id: str) -> bool:
        """Whether someone asked the running job to stop (one Redis EXISTS)."""
        return bool(self.redis.exists(cancel_key(job_id)))

    def set_progress(
        self, job_id: str, step: int, iterations: int, loss: dict[str, float], elapsed: float
    ) -> None:
        self.redis.hset(
            job_key(job_id),
            mapping={
                "step": str(step),
                "iterations": str(iterations),
                "loss": json.dumps(loss),
                "elapsed": repr(float(elapsed)),
            },
        )

    def set_preview(self, job_id: str, step: int) -> None:
        """Record that the preview image in storage now shows this step."""
        self.redis.hset(job_key(job_id), "preview_step", str(step))

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        error: str | None = None,
        has_result: bool = False,
        stats: dict[str, Any] | None = None,
    ) -> None:
        """Set a final status, the finish time and the TTL that lets the record expire."""
        if status not in FINISHED:
            raise ValueError(f"not a final status: {status}")
        now = time.time()
        fields = {
            "status": status,
            "finished_at": repr(now),
            "has_result": "1" if has_result else "0",
            "error": error or "",
            "stats": json.dumps(stats or {}),
        }
        with self.redis.pipeline() as pipe:
            pipe.hset(job_key(job_id), mapping=fields)
            pipe.zrem(QUEUE_KEY, job_id)
            pipe.zadd(FINISHED_KEY, {job_id: now})
            pipe.expire(job_key(job_id), self.ttl_seconds)
            pipe.delete(cancel_key(job_id))
            pipe.execute()

    def take_expired_job_ids(self, limit: int = 100) -> list[str]:
        """Finished jobs older than the TTL (their records have expired): removed from the index and
        returned, so the caller deletes their files. Each id is handed out once."""
        cutoff = time.time() - self.ttl_seconds
        expired = self.redis.zrangebyscore(FINISHED_KEY, "-inf", cutoff, start=0, num=limit)
        return [job_id for job_id in expired if self.redis.zrem(FINISHED_KEY, job_id)]

    # --- workers ---------------------------------------------------------------------------------
    def worker_seen(self, hostname: str) -> None:
        """Heartbeat of a worker process (for /readyz)."""
        self.redis.hset(WORKERS_KEY, hostname, repr(time.time()))

    def workers_last_seen(self) -> dict[str, float]:
        """{hostname: unix time of its last heartbeat} for every worker ever seen by this Redis."""
        return {name: float(seen) for name, seen in self.redis.hgetall(WORKERS_KEY).items()}


@lru_cache
def get_redis() -> Redis:
    """The process-wide Redis client for settings.redis_url (strings in, strings out)."""
    return Redis.from_url(
        get_settings().redis_url,
        decode_responses=True,
        health_check_interval=30,
        # Fail a request instead of hanging it when Redis is unreachable.
        socket_connect_timeout=5,
        socket_timeout=15,
    )


def get_job_store() -> JobStore:
    return JobStore(get_redis())
