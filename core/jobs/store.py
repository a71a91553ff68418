"""The job store's operations: job records, progress, cancel flags, queue order, worker heartbeats.

The keys are in core/jobs/keys.py, the record in record.py, the metrics in metrics.py. State changes
that race between the web and a worker (queued -> running, queued -> cancelled, a lease's renewal or
hand-back) are single Lua scripts, the .lua files beside this module, so a job cancelled while queued
can never also start. Used by the web app and the worker alike, so no FastAPI import here.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from core.jobs.keys import (
    FINISHED_KEY,
    JOB_KEY_PREFIX,
    METRICS_COUNTS_KEY,
    PACE_KEY,
    QUEUE_KEY,
    RUNNING_KEY,
    WORKER_ENGINES_KEY,
    WORKERS_KEY,
    cancel_key,
    idempotency_key,
    is_job_id,
    job_key,
    webhook_attempts_key,
    worker_stopping_key,
)
from core.jobs.metrics import (
    JOB_DURATION_BUCKETS,
    QUEUE_WAIT_BUCKETS,
    STEP_SECONDS_BUCKETS,
    MetricsSnapshot,
    observe,
    read_snapshot,
    size_bucket,
)
from core.jobs.record import FINISHED, Claim, ClaimOutcome, JobRecord, JobStatus, decode_record
from core.settings import get_settings

PACE_KEPT = 50  # finished jobs whose pace the time estimates read
# A job of priority p is placed in the queue order as if it came p times this much later (a
# submitter's later jobs wait behind everybody's first ones: core.routing.fair_priority).
QUEUE_PRIORITY_SECONDS = 1e9


@dataclass(frozen=True)
class Pace:
    """One finished job's measured pace: its output's megapixels and the seconds a full-size step
    took per megapixel (a ladder's smaller rungs counted by their pixels; traces included)."""

    megapixels: float
    seconds_per_megapixel_step: float


class QueueFull(Exception):
    """The job was not created: ATELIER_MAX_QUEUED_JOBS jobs are already waiting."""


@lru_cache
def _lua_source(name: str) -> str:
    """The text of the Lua script core/jobs/{name}.lua (package data: installed beside this module)."""
    return files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")


def _script(redis: Redis, name: str) -> Script:
    return redis.register_script(_lua_source(name))


class JobStore:
    """Job records, progress, cancel flags, queue order and worker heartbeats in one Redis."""

    def __init__(self, redis: Redis, ttl_seconds: int | None = None) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds if ttl_seconds is not None else get_settings().job_ttl_seconds
        self._create = _script(redis, "create")
        self._claim = _script(redis, "claim")
        self._renew_lease = _script(redis, "renew_lease")
        self._release = _script(redis, "release")
        self._cancel = _script(redis, "cancel")
        self._fail_abandoned = _script(redis, "fail_abandoned")
        self._webhook_due = _script(redis, "webhook_due")
        self._webhook_attempt = _script(redis, "webhook_attempt")

    # --- creating and reading ------------------------------------------------------------------
    def create(
        self,
        job_id: str,
        options: dict[str, Any],
        style_count: int,
        *,
        token_hash: str = "",
        max_queued: int = 0,
        masks: Sequence[bool] = (),
        notes: Sequence[str] = (),
        style_credits: Sequence[Mapping[str, str] | None] = (),
        content_credit: Mapping[str, str] | None = None,
        callback: tuple[str, str] | None = None,
        submitter: str = "",
        batch_id: str = "",
        priority: int = 0,
        video: Mapping[str, Any] | None = None,
    ) -> JobRecord:
        """Store a new queued job and put it at the back of the queue order.

        token_hash: app.job_tokens.hash_job_token of the submitter's token (empty: nobody may
        cancel or delete it through the API). max_queued: refuse with QueueFull when that many jobs
        are already queued (0: no cap). masks: per style image, whether a mask was stored for it
        (empty: no masks); notes: sentences about the upload for the job's page and status;
        style_credits: per style image, the library painting it is (core/library.py) or None for an
        upload; content_credit: the library's example photo the content is, or None; video: a video
        job's clip as probed (core/media.py), None for a still.
        callback: (a checked callback URL, the base of the event's absolute URLs), or None.
        submitter: who sent it (the client's address), for fair queueing (queued_by); batch_id: the
        batch it belongs to; priority: its Celery priority (core.routing.fair_priority), which
        places it in the queue order as the workers will take it.
        """
        now = time.time()
        fields = {
            "status": "queued",
            "options": json.dumps(options),
            "style_count": str(style_count),
            "created_at": repr(now),
            "iterations": str(options.get("iterations", 0)),
            "step": "0",
            "token_hash": token_hash,
            "masks": json.dumps(list(masks)),
            "notes": json.dumps(list(notes)),
            "style_credits": json.dumps([None if c is None else dict(c) for c in style_credits]),
            "content_credit": json.dumps(None if content_credit is None else dict(content_credit)),
        }
        if callback is not None:
            fields |= {"callback_url": callback[0], "base_url": callback[1], "webhook_state": "waiting"}
        fields |= {"submitter": submitter, "batch_id": batch_id, "priority": str(priority)}
        if video is not None:
            fields["video"] = json.dumps(dict(video))
        pairs = [item for name_value in fields.items() for item in name_value]
        # Queue order as the workers take it: by priority step, then by time (queue_position).
        score = now + priority * QUEUE_PRIORITY_SECONDS
        created = self._create(
            keys=[job_key(job_id), QUEUE_KEY, METRICS_COUNTS_KEY],
            args=[job_id, repr(score), max_queued, *pairs],
        )
        if not created:
            raise QueueFull(f"{max_queued} jobs are already queued")
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
        return decode_record(job_id, raw, bool(cancel_flag))

    def token_hash(self, job_id: str) -> str | None:
        """The stored hash of the job's token ("" for a job created without one; None if no job)."""
        if not is_job_id(job_id):
            return None
        return self.redis.hget(job_key(job_id), "token_hash")

    def queued_count(self) -> int:
        """Jobs waiting for a worker (not counting running ones)."""
        return int(self.redis.zcard(QUEUE_KEY))

    def delete(self, job_id: str) -> None:
        """Forget a job entirely (used to undo a submission that could not be enqueued)."""
        with self.redis.pipeline() as pipe:
            pipe.delete(job_key(job_id), cancel_key(job_id), webhook_attempts_key(job_id))
            pipe.zrem(QUEUE_KEY, job_id)
            pipe.zrem(FINISHED_KEY, job_id)
            pipe.zrem(RUNNING_KEY, job_id)
            pipe.execute()

    def queued_by(self, submitter: str) -> int:
        """Jobs of this submitter waiting in the queue now (for its next job's fair priority)."""
        waiting = self.redis.zrange(QUEUE_KEY, 0, -1)
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in waiting:
                pipe.hget(job_key(job_id), "submitter")
            return sum(1 for owner in pipe.execute() if owner == submitter)

    def queue_position(self, job_id: str) -> int | None:
        """1 for the next job a worker will take, 2 for the one after, ...; None if not queued."""
        rank = self.redis.zrank(QUEUE_KEY, job_id)
        return None if rank is None else int(rank) + 1

    # --- state changes ---------------------------------------------------------------------------
    def claim(self, job_id: str, worker: str, lease_seconds: float, max_attempts: int) -> Claim:
        """Decide what this delivery of the job does (see Claim): start it, resume it after a crashed
        worker (attempts + 1, at most max_attempts), or leave it."""
        now = time.time()
        outcome, value, extra = self._claim(
            keys=[job_key(job_id), QUEUE_KEY, RUNNING_KEY, METRICS_COUNTS_KEY],
            args=[job_id, repr(now), worker, repr(float(lease_seconds)), max_attempts],
        )
        outcome = ClaimOutcome(outcome)
        if outcome is ClaimOutcome.LEASED:
            return Claim(outcome, lease_until=float(value))
        if outcome is ClaimOutcome.STARTED:
            # A metric only: a failure here must not make the caller retry a claim that was made.
            with contextlib.suppress(RedisError):
                self._observe("queue_wait_seconds", QUEUE_WAIT_BUCKETS, max(0.0, now - float(extra)))
        return Claim(outcome, attempts=int(value), handed_back=extra == "1")

    def release(self, job_id: str, worker: str) -> bool:
        """Hand the running job back because its worker is shutting down (SIGTERM, preemption): the
        next delivery resumes it at once from its checkpoint without counting an attempt. False when
        this worker does not hold the job (any more)."""
        return bool(
            self._release(keys=[job_key(job_id), METRICS_COUNTS_KEY], args=[worker, repr(time.time())])
        )

    def renew_lease(self, job_id: str, worker: str, lease_seconds: float) -> bool:
        """Extend the running job's lease; False when this worker does not hold it any more (the job
        finished, was deleted, or another worker took it over after this one stalled)."""
        until = repr(time.time() + lease_seconds)
        return bool(self._renew_lease(keys=[job_key(job_id)], args=[worker, until]))

    def set_checkpoint(self, job_id: str, step: int, *, final: bool = False) -> None:
        """Record that storage.checkpoint_key now holds the image after this step; final: the finished
        result image (stored as the result on the next try), not an image to go on optimising."""
        mapping = {"checkpoint_step": str(step), "checkpoint_final": "1" if final else "0"}
        self.redis.hset(job_key(job_id), mapping=mapping)

    def set_storage_wait(self, job_id: str, reason: str | None) -> None:
        """Record why the running job waits for storage (None: it no longer does)."""
        self.redis.hset(job_key(job_id), "storage_wait", reason or "")

    def request_cancel(self, job_id: str) -> str | None:
        """Cancel a job: a queued one is cancelled now, a running one is asked to stop.

        Returns the status the job had before (None if it does not exist); finished jobs are left as
        they are.
        """
        status = self._cancel(
            keys=[job_key(job_id), cancel_key(job_id), QUEUE_KEY, FINISHED_KEY, METRICS_COUNTS_KEY],
            args=[job_id, repr(time.time()), self.ttl_seconds],
        )
        return status or None

    def cancel_requested(self, job_id: str) -> bool:
        """Whether someone asked the running job to stop (one Redis EXISTS)."""
        return bool(self.redis.exists(cancel_key(job_id)))

    def set_progress(
        self,
        job_id: str,
        step: int,
        iterations: int,
        loss: dict[str, float],
        elapsed: float,
        work: float | None = None,
        work_before: float = 0.0,
    ) -> None:
        """The latest step; ``work``: the fraction of the run's work done (core/progress.py), when known,
        ``work_before`` of it done before this run (resumed from a checkpoint), ``elapsed`` this run's."""
        mapping = {
            "step": str(step),
            "iterations": str(iterations),
            "loss": json.dumps(loss),
            "elapsed": repr(float(elapsed)),
            "work_before": repr(float(work_before)),
        }
        if work is not None:
            mapping["work"] = repr(float(work))
        self.redis.hset(job_key(job_id), mapping=mapping)

    def set_frame(self, job_id: str, frame: int, frames_done: int | None = None) -> None:
        """A video job: the frame being optimised now and, when given, how many are finished (each
        stored under storage.frame_key before this is recorded)."""
        mapping = {"frame": str(frame)}
        if frames_done is not None:
            mapping["frames_done"] = str(frames_done)
        self.redis.hset(job_key(job_id), mapping=mapping)

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
        started_at, options_json, run_start_step = self.redis.hmget(
            job_key(job_id), ["started_at", "options", "run_start_step"]
        )
        fields = {
            "status": status,
            "finished_at": repr(now),
            "has_result": "1" if has_result else "0",
            "error": error or "",
            "stats": json.dumps(stats or {}),
            "storage_wait": "",
        }
        with self.redis.pipeline() as pipe:
            pipe.hset(job_key(job_id), mapping=fields)
            pipe.zrem(QUEUE_KEY, job_id)
            pipe.zrem(RUNNING_KEY, job_id)
            pipe.zadd(FINISHED_KEY, {job_id: now})
            pipe.expire(job_key(job_id), self.ttl_seconds)
            pipe.delete(cancel_key(job_id))
            pipe.hincrby(METRICS_COUNTS_KEY, status, 1)
            for outcome, count in (stats or {}).get("style_targets", {}).items():  # cached, computed
                pipe.hincrby(METRICS_COUNTS_KEY, f"style_targets_{outcome}", int(count))
            if started_at:
                self._observe("job_duration_seconds", JOB_DURATION_BUCKETS, now - float(started_at), pipe)
            steps_run = int((stats or {}).get("steps", 0)) - int(run_start_step or 0)
            engine_seconds = float((stats or {}).get("engine_seconds", 0.0))
            if status == "succeeded" and steps_run > 0 and engine_seconds > 0:
                side = int(json.loads(options_json or "{}").get("size", 0))
                name = f"step_seconds:{size_bucket(side)}"
                self._observe(name, STEP_SECONDS_BUCKETS, engine_seconds / steps_run, pipe)
            megapixel_steps = float((stats or {}).get("megapixel_steps", 0.0))
            if status == "succeeded" and megapixel_steps > 0 and engine_seconds > 0:
                pace = {"megapixels": float(stats["megapixels"]), "pace": engine_seconds / megapixel_steps}
                pipe.lpush(PACE_KEY, json.dumps(pace))
                pipe.ltrim(PACE_KEY, 0, PACE_KEPT - 1)
            pipe.execute()

    # --- webhooks (core/webhooks.py, worker/webhooks.py) ------------------------------------------
    def webhook_due(self, job_id: str) -> bool:
        """The finished job has a callback not yet sent: marks it pending and returns True, once (the
        web's cancel of a queued job and a worker's finish never both send it)."""
        return bool(self._webhook_due(keys=[job_key(job_id)]))

    def record_webhook_attempt(self, job_id: str, attempt: dict[str, Any], state: str) -> bool:
        """Append one delivery attempt and set the delivery's state (both expire with the record);
        False when the job is gone."""
        keys = [job_key(job_id), webhook_attempts_key(job_id)]
        return bool(self._webhook_attempt(keys=keys, args=[json.dumps(attempt), state, self.ttl_seconds]))

    def webhook_attempts(self, job_id: str) -> list[dict[str, Any]]:
        """Every delivery attempt of the job's webhook, oldest first."""
        return [json.loads(raw) for raw in self.redis.lrange(webhook_attempts_key(job_id), 0, -1)]

    # --- idempotency keys (app/idempotency.py) --------------------------------------------------
    def claim_idempotency(
        self, digest: str, request_hash: str, pending_seconds: int
    ) -> dict[str, Any] | None:
        """Claim an Idempotency-Key (by its SHA-256) for a request: None when this caller claimed it
        now (SET NX: of concurrent callers exactly one) and creates the job; otherwise what is stored:
        {"request": its request's hash, "state": "pending" or "done", "job_id", "token"}, or
        {"state": "gone"} when the holder gave it up in between. A claim nobody completes lapses after
        pending_seconds (its web process died)."""
        key = idempotency_key(digest)
        pending = json.dumps({"request": request_hash, "state": "pending"})
        if self.redis.set(key, pending, nx=True, ex=pending_seconds):
            return None
        raw = self.redis.get(key)
        return json.loads(raw) if raw else {"state": "gone"}

    def complete_idempotency(
        self, digest: str, request_hash: str, job_id: str, sealed_token: str, ttl_seconds: int
    ) -> None:
        """The claimed key now names its job (and the job's token, sealed by the key: app/idempotency.py)."""
        done = {"request": request_hash, "state": "done", "job_id": job_id, "token": sealed_token}
        self.redis.set(idempotency_key(digest), json.dumps(done), ex=ttl_seconds)

    def forget_idempotency(self, digest: str) -> None:
        """Free the key: its request created no job, or its job is gone."""
        self.redis.delete(idempotency_key(digest))

    def recent_paces(self) -> list[Pace]:
        """The last PACE_KEPT succeeded jobs' pace, newest first."""
        paces = (json.loads(raw) for raw in self.redis.lrange(PACE_KEY, 0, PACE_KEPT - 1))
        return [Pace(float(pace["megapixels"]), float(pace["pace"])) for pace in paces]

    def _observe(self, name: str, buckets: tuple[float, ...], value: float, pipe: Any = None) -> None:
        """Count one observation in a Redis-held histogram (metrics.observe), in pipe if given."""
        if pipe is not None:
            observe(pipe, name, buckets, value)
            return
        with self.redis.pipeline() as own:
            observe(own, name, buckets, value)
            own.execute()

    def take_expired_job_ids(self, limit: int = 100) -> list[str]:
        """Finished jobs older than the TTL (their records have expired): removed from the index and
        returned, so the caller deletes their files. Each id is handed out once."""
        cutoff = time.time() - self.ttl_seconds
        expired = self.redis.zrangebyscore(FINISHED_KEY, "-inf", cutoff, start=0, num=limit)
        return [job_id for job_id in expired if self.redis.zrem(FINISHED_KEY, job_id)]

    def fail_abandoned(self, lapsed_seconds: float, error: str) -> list[str]:
        """Fail every running job whose lease lapsed more than lapsed_seconds ago (no worker renews or
        resumed it); returns their ids. A redelivery that resumes one first renews its lease, so the
        two cannot both happen (one Lua script)."""
        now = time.time()
        return list(
            self._fail_abandoned(
                keys=[RUNNING_KEY, FINISHED_KEY, METRICS_COUNTS_KEY],
                args=[repr(now), repr(now - lapsed_seconds), self.ttl_seconds, error, JOB_KEY_PREFIX],
            )
        )

    def mark_for_cleanup(self, job_id: str) -> None:
        """Hand an expired job out again on the next take_expired_job_ids (its file deletion failed)."""
        self.redis.zadd(FINISHED_KEY, {job_id: 0})

    # --- workers ---------------------------------------------------------------------------------
    def worker_seen(self, hostname: str) -> None:
        """Heartbeat of a worker process (for /readyz)."""
        self.redis.hset(WORKERS_KEY, hostname, repr(time.time()))

    def workers_last_seen(self) -> dict[str, float]:
        """{hostname: unix time of its last heartbeat} for every worker ever seen by this Redis."""
        return {name: float(seen) for name, seen in self.redis.hgetall(WORKERS_KEY).items()}

    def forget_workers(self, silent_seconds: float) -> list[str]:
        """Drop heartbeats older than silent_seconds (workers that are gone), so the hash stays small."""
        cutoff = time.time() - silent_seconds
        gone = [name for name, seen in self.workers_last_seen().items() if seen < cutoff]
        if gone:
            self.redis.hdel(WORKERS_KEY, *gone)
            self.redis.hdel(WORKER_ENGINES_KEY, *gone)
        return gone

    def set_worker_engine(
        self, hostname: str, error: str | None, weights: str = "", precision: str = ""
    ) -> None:
        """What a worker's engine reported when it loaded its VGG19: ready (error None) or why not."""
        state = {"ready": error is None, "error": error or "", "weights": weights, "precision": precision}
        self.redis.hset(WORKER_ENGINES_KEY, hostname, json.dumps({**state, "at": time.time()}))

    def worker_engines(self) -> dict[str, dict[str, Any]]:
        """{hostname: its engine's last report (set_worker_engine)}."""
        return {name: json.loads(raw) for name, raw in self.redis.hgetall(WORKER_ENGINES_KEY).items()}

    def worker_gone(self, hostname: str) -> None:
        """A worker shut down cleanly: it no longer counts as live (nor its stopping flag)."""
        with self.redis.pipeline() as pipe:
            pipe.hdel(WORKERS_KEY, hostname)
            pipe.hdel(WORKER_ENGINES_KEY, hostname)
            pipe.delete(worker_stopping_key(hostname))
            pipe.execute()

    def set_worker_stopping(self, hostname: str, ttl_seconds: int = 600) -> None:
        """Tell the jobs running on this worker (in any of its processes) that it is shutting down."""
        self.redis.set(worker_stopping_key(hostname), "1", ex=ttl_seconds)

    def worker_stopping(self, hostname: str) -> bool:
        return bool(self.redis.exists(worker_stopping_key(hostname)))

    # --- metrics ---------------------------------------------------------------------------------
    def metrics_snapshot(self, queues: list[str]) -> MetricsSnapshot:
        """Everything app/metrics.py exposes, read in one round trip (metrics.read_snapshot)."""
        return read_snapshot(self.redis, queues)


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
        # After a Redis restart every pooled connection is dead: retry a command a few times on a new
        # one (about 0.4 s in all), so the first request after the restart succeeds, while a Redis that
        # stays down still fails fast (the web answers 503, the worker tolerates it: worker/tasks.py).
        retry=Retry(ExponentialBackoff(cap=0.25, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def get_job_store() -> JobStore:
    return JobStore(get_redis())
