"""The job store: every Redis key Atelier uses lives in this module.

Keys (prefix ``atelier:``):
  job:{id}          hash, the job record (see JobRecord); expires job_ttl_seconds after it finishes.
                    While running it holds a lease (lease_until, worker) renewed by the worker that
                    runs it, the delivery count (attempts) and the last checkpoint step (docs/reliability.md)
  job:{id}:cancel   string "1" while a cancel has been requested
  queue             sorted set of queued job ids, scored by submission time (for queue_position)
  finished          sorted set of finished job ids, scored by finish time (their files are deleted
                    once the record's TTL has passed: see expired_job_ids)
  running           sorted set of running job ids, scored by their (latest) claim time: the clean-up
                    fails those whose lease lapsed long ago and that no delivery resumed
  worker:last_seen  hash {hostname: unix time} of worker heartbeats (for /readyz and the live-workers metric)
  worker:{hostname}:stopping  string "1" while that worker shuts down (SIGTERM): its running jobs
                    checkpoint, release their lease and go back to the queue (docs/reliability.md)
  metrics:counts    hash of job counters (submitted, succeeded, failed, cancelled, preempted, redelivered)
  metrics:hist:{name}  hash of one histogram: b:{upper bound} (per-bucket counts), sum, count
                    (queue_wait_seconds, job_duration_seconds, step_seconds:{size bucket}); app/metrics.py
                    turns these into Prometheus metrics at scrape time, so every web process serves the
                    same fleet-wide numbers
Kombu's keys (the broker) are kombu's; this module only reads queue lengths, renews the score of a
live worker's messages in kombu's unacked index (BROKER_UNACKED_INDEX_KEY, renew_messages) and puts a
handed-back job's message back at the front of its queue (requeue_first).
  ratelimit:{client}:{minute}  counter of one client's submissions in one minute (app/ratelimit.py)

State changes that race between the web and a worker (queued -> running, queued -> cancelled) are
single Lua scripts, so a job cancelled while queued can never also start.
Used by the web app and the worker alike, so no FastAPI import here.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from core.settings import get_settings

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

_JOB_ID = re.compile(r"[0-9a-f]{32}")
PREFIX = "atelier:"
QUEUE_KEY = PREFIX + "queue"
FINISHED_KEY = PREFIX + "finished"
RUNNING_KEY = PREFIX + "running"
WORKERS_KEY = PREFIX + "worker:last_seen"
WORKER_HEARTBEAT_SECONDS = 10.0  # how often a worker process writes its heartbeat
WORKER_FRESH_SECONDS = 60.0  # /readyz counts a worker as seen if it beat this recently
# The live-workers metric: a worker that missed three heartbeats is gone (a clean shutdown removes
# its heartbeat at once: worker_gone).
WORKER_LIVE_SECONDS = 3 * WORKER_HEARTBEAT_SECONDS
METRICS_COUNTS_KEY = PREFIX + "metrics:counts"
# Kombu's Redis transport: {delivery tag: time delivered} of unacknowledged messages; kombu's
# restore_visible requeues those older than the visibility timeout (worker/lease.py keeps a live
# worker's messages fresh, so only a dead worker's messages age).
BROKER_UNACKED_INDEX_KEY = "unacked_index"
BROKER_UNACKED_KEY = "unacked"  # kombu's {delivery tag: JSON [message, exchange, routing key]}

# Histogram buckets (upper bounds, seconds) of the job metrics (app/metrics.py).
QUEUE_WAIT_BUCKETS = (0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)
JOB_DURATION_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
STEP_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SIZE_BUCKETS = (128, 256, 512, 1024, 2048)  # a job's output side is counted in the first it fits


def size_bucket(size: int) -> str:
    """The label of the size bucket of a job's output side: "128", "256", ... or "larger"."""
    return next((str(bound) for bound in SIZE_BUCKETS if size <= bound), "larger")


def histogram_key(name: str) -> str:
    return f"{PREFIX}metrics:hist:{name}"


def worker_stopping_key(hostname: str) -> str:
    return f"{PREFIX}worker:{hostname}:stopping"


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


def rate_limit_key(client: str, window: int) -> str:
    """The submission counter of one client (an IP address) in one time window (a minute number)."""
    # The client string comes from the connection, not the user; still keep it to a key-safe shape.
    safe_client = re.sub(r"[^0-9A-Za-z.:_-]", "_", client)[:64]
    return f"{PREFIX}ratelimit:{safe_client}:{window}"


class QueueFull(Exception):
    """The job was not created: ATELIER_MAX_QUEUED_JOBS jobs are already waiting."""


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
    attempts: int = 0  # deliveries that ran it: 1 normally, 2+ after a worker crashed mid-job
    checkpoint_step: int = 0  # step of the image saved under storage.checkpoint_key (0: none)
    preemptions: int = 0  # times its worker was stopped (SIGTERM) and handed it back; not attempts
    handed_back: bool = False  # handed back (release) and not yet taken by the next worker
    masks: tuple[bool, ...] = ()  # per style image: whether it has a mask (storage.mask_key); (): none
    notes: tuple[str, ...] = ()  # what the service changed about the upload, for people (a resized mask)
    work: float | None = None  # fraction of the run's work done (pixel-steps, core/progress.py)
    # The fraction done before this run began: a resumed job's checkpoint (its ETA counts the pace of
    # this run only, whose ``elapsed`` starts at the resume).
    work_before: float = 0.0
    # Why the running job waits for storage ("no space left on device"); None while it does not.
    storage_wait: str | None = None
    # The checkpoint holds the finished result (after the last step), not an image to optimise on.
    checkpoint_final: bool = False

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
        attempts=int(raw.get("attempts") or 0),
        checkpoint_step=int(raw.get("checkpoint_step") or 0),
        storage_wait=raw.get("storage_wait") or None,
        checkpoint_final=raw.get("checkpoint_final") == "1",
        preemptions=int(raw.get("preemptions") or 0),
        handed_back=raw.get("handed_over") == "1",
        masks=tuple(json.loads(raw.get("masks") or "[]")),
        notes=tuple(json.loads(raw.get("notes") or "[]")),
        work=number("work"),
        work_before=number("work_before") or 0.0,
    )


ClaimOutcome = Literal["started", "resumed", "leased", "exhausted", "finished", "missing"]


@dataclass(frozen=True)
class Claim:
    """What a delivery of a job may do (JobStore.claim).

    started: queued -> running, attempt 1. resumed: the job was running but its worker's lease lapsed
    (the worker died): this delivery takes it over as attempt ``attempts``; or its worker was stopped
    and handed it back (``handed_over``: JobStore.release), then ``attempts`` stays as it was. leased:
    another worker holds a live lease until ``lease_until``. exhausted: it already ran ``attempts``
    times (the cap). finished / missing: nothing to do.
    """

    outcome: ClaimOutcome
    attempts: int = 0
    lease_until: float = 0.0
    handed_over: bool = False


# Create a queued job unless the queue is full. KEYS: job, queue, metrics counts; ARGV: id, now, max
# queued (0 = no cap), then the record's field/value pairs. One script, so concurrent submissions
# cannot overshoot.
_CREATE = """
local cap = tonumber(ARGV[3])
if cap > 0 and redis.call('ZCARD', KEYS[2]) >= cap then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'submitted', 1)
return 1
"""

# Claim a delivered job. KEYS: job, queue, running, metrics counts; ARGV: id, now, worker, lease
# seconds, max attempts. Returns {outcome, attempts or lease_until, extra}: extra is the creation time
# for 'started' (the queue wait), '1' for a job its stopped worker handed back (JobStore.release).
# Redelivered running jobs are taken over only once the lease of the worker that ran them has lapsed,
# so two live workers never run one job. A handed-back job is resumed without counting an attempt:
# preemption is not a crash. run_start_step: the step this run starts at (for seconds per step).
_CLAIM = """
local status = redis.call('HGET', KEYS[1], 'status')
local now = tonumber(ARGV[2])
local lease_until = tostring(now + tonumber(ARGV[4]))
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[2], 'worker', ARGV[3],
             'attempts', '1', 'lease_until', lease_until, 'run_start_step', '0')
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
  return {'started', '1', redis.call('HGET', KEYS[1], 'created_at') or ARGV[2]}
end
if status ~= 'running' then return {status and 'finished' or 'missing', '0', ''} end
local lease = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0') or 0
if lease > now then return {'leased', tostring(lease), ''} end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '1') or 1
local checkpoint = redis.call('HGET', KEYS[1], 'checkpoint_step') or '0'
if redis.call('HGET', KEYS[1], 'handed_over') == '1' then
  redis.call('HSET', KEYS[1], 'worker', ARGV[3], 'lease_until', lease_until, 'run_start_step', checkpoint)
  redis.call('HDEL', KEYS[1], 'handed_over')
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
  return {'resumed', tostring(attempts), '1'}
end
if attempts >= tonumber(ARGV[5]) then return {'exhausted', tostring(attempts), ''} end
redis.call('HSET', KEYS[1], 'attempts', tostring(attempts + 1), 'worker', ARGV[3],
           'lease_until', lease_until, 'run_start_step', checkpoint)
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('HINCRBY', KEYS[4], 'redelivered', 1)
return {'resumed', tostring(attempts + 1), ''}
"""

# Hand a running job back (its worker is shutting down): the lease lapses now, so the next delivery
# resumes it at once, and handed_over tells that delivery not to count an attempt. Only the worker
# holding the lease may. KEYS: job, metrics counts; ARGV: worker, now.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[2], 'handed_over', '1')
redis.call('HINCRBY', KEYS[1], 'preemptions', 1)
redis.call('HINCRBY', KEYS[2], 'preempted', 1)
return 1
"""

# Renew the visibility of a live worker's unacknowledged messages (kombu's unacked index): XX, so a
# message acknowledged meanwhile is not put back. KEYS: unacked index; ARGV: now, delivery tags.
_RENEW_MESSAGES = """
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[1], ARGV[i])
end
return renewed
"""

# Fail running jobs whose lease lapsed before a cutoff: their worker died and no delivery resumed them
# (the hard time limit acknowledged the message, or it was lost). Not a job its stopping worker handed
# back: kombu requeued its message, which waits its turn however long the queue. KEYS: running, finished;
# ARGV: now, cutoff, ttl, error message, job key prefix; KEYS[3]: metrics counts. Returns the failed ids.
_FAIL_ABANDONED = """
local failed = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[5] .. id
  if redis.call('HGET', key, 'status') ~= 'running' then
    redis.call('ZREM', KEYS[1], id)
  elseif redis.call('HGET', key, 'handed_over') ~= '1'
     and (tonumber(redis.call('HGET', key, 'lease_until') or '0') or 0) < tonumber(ARGV[2]) then
    redis.call('HSET', key, 'status', 'failed', 'finished_at', ARGV[1], 'has_result', '0',
               'error', ARGV[4], 'stats', '{}')
    redis.call('EXPIRE', key, ARGV[3])
    redis.call('DEL', key .. ':cancel')
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], ARGV[1], id)
    redis.call('HINCRBY', KEYS[3], 'failed', 1)
    table.insert(failed, id)
  end
end
return failed
"""

# Renew a running job's lease if this worker still holds it. KEYS: job; ARGV: worker, lease_until.
_RENEW = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[2])
return 1
"""

# Cancel. KEYS: job, cancel flag, queue, finished, metrics counts; ARGV: id, now, ttl.
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
  redis.call('HINCRBY', KEYS[5], 'cancelled', 1)
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
        self._cancel = redis.register_script(_CANCEL)
        self._claim = redis.register_script(_CLAIM)
        self._renew = redis.register_script(_RENEW)
        self._fail_abandoned = redis.register_script(_FAIL_ABANDONED)
        self._create = redis.register_script(_CREATE)
        self._release = redis.register_script(_RELEASE)
        self._renew_messages = redis.register_script(_RENEW_MESSAGES)

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
    ) -> JobRecord:
        """Store a new queued job and put it at the back of the queue order.

        token_hash: app.job_tokens.hash_job_token of the submitter's token (empty: nobody may
        cancel or delete it through the API). max_queued: refuse with QueueFull when that many jobs
        are already queued (0: no cap). masks: per style image, whether a mask was stored for it
        (empty: no masks); notes: sentences about the upload for the job's page and status.
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
        }
        pairs = [item for name_value in fields.items() for item in name_value]
        created = self._create(
            keys=[job_key(job_id), QUEUE_KEY, METRICS_COUNTS_KEY],
            args=[job_id, repr(now), max_queued, *pairs],
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
        return _decode(job_id, raw, bool(cancel_flag))

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
            pipe.delete(job_key(job_id), cancel_key(job_id))
            pipe.zrem(QUEUE_KEY, job_id)
            pipe.zrem(FINISHED_KEY, job_id)
            pipe.zrem(RUNNING_KEY, job_id)
            pipe.execute()

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
        if outcome == "leased":
            return Claim("leased", lease_until=float(value))
        if outcome == "started":
            # A metric only: a failure here must not make the caller retry a claim that was made.
            with contextlib.suppress(RedisError):
                self._observe("queue_wait_seconds", QUEUE_WAIT_BUCKETS, max(0.0, now - float(extra)))
        return Claim(outcome, attempts=int(value), handed_over=extra == "1")

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
        return bool(self._renew(keys=[job_key(job_id)], args=[worker, until]))

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
            if started_at:
                self._observe("job_duration_seconds", JOB_DURATION_BUCKETS, now - float(started_at), pipe)
            steps_run = int((stats or {}).get("steps", 0)) - int(run_start_step or 0)
            engine_seconds = float((stats or {}).get("engine_seconds", 0.0))
            if status == "succeeded" and steps_run > 0 and engine_seconds > 0:
                side = int(json.loads(options_json or "{}").get("size", 0))
                name = f"step_seconds:{size_bucket(side)}"
                self._observe(name, STEP_SECONDS_BUCKETS, engine_seconds / steps_run, pipe)
            pipe.execute()

    def _observe(self, name: str, buckets: tuple[float, ...], value: float, pipe: Any = None) -> None:
        """Count one observation in a Redis-held histogram (histogram_key): its bucket, sum and count."""
        bucket = next((bound for bound in buckets if value <= bound), None)
        target = pipe if pipe is not None else self.redis.pipeline()
        key = histogram_key(name)
        target.hincrby(key, f"b:{bucket!r}" if bucket is not None else "b:+Inf", 1)
        target.hincrbyfloat(key, "sum", value)
        target.hincrby(key, "count", 1)
        if pipe is None:
            target.execute()

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
                args=[repr(now), repr(now - lapsed_seconds), self.ttl_seconds, error, f"{PREFIX}job:"],
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
        return gone

    def worker_gone(self, hostname: str) -> None:
        """A worker shut down cleanly: it no longer counts as live (nor its stopping flag)."""
        with self.redis.pipeline() as pipe:
            pipe.hdel(WORKERS_KEY, hostname)
            pipe.delete(worker_stopping_key(hostname))
            pipe.execute()

    def set_worker_stopping(self, hostname: str, ttl_seconds: int = 600) -> None:
        """Tell the jobs running on this worker (in any of its processes) that it is shutting down."""
        self.redis.set(worker_stopping_key(hostname), "1", ex=ttl_seconds)

    def worker_stopping(self, hostname: str) -> bool:
        return bool(self.redis.exists(worker_stopping_key(hostname)))

    def renew_messages(self, delivery_tags: list[str]) -> int:
        """Mark these unacknowledged broker messages (kombu delivery tags) as just delivered, so
        kombu's restore_visible leaves them with this live worker for another visibility timeout;
        returns how many were still unacknowledged."""
        if not delivery_tags:
            return 0
        return int(
            self._renew_messages(keys=[BROKER_UNACKED_INDEX_KEY], args=[repr(time.time()), *delivery_tags])
        )

    def requeue_first(self, task_id: str) -> bool:
        """Put the unacknowledged message of this Celery task back at the front of its queue, as
        kombu's restore of a dead worker's message does (kombu's own reject appends it at the back).

        It goes back under a new delivery tag, so the acknowledgement of the old one that follows
        cannot delete the bookkeeping of the worker that takes it next. False (nothing changed) when
        not exactly one such message is held, or it has a priority (a queue of its own in kombu).
        """
        held = []
        for tag, raw in self.redis.hgetall(BROKER_UNACKED_KEY).items():
            try:
                message, _exchange, routing_key = json.loads(raw)
                if message["headers"]["id"] == task_id:
                    held.append((tag, raw, message, routing_key))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # not a Celery message of the shape this code knows
        if len(held) != 1:  # none, or another worker holds a second delivery: which one is ours?
            return False
        tag, raw, message, queue = held[0]
        if message["properties"].get("priority") not in (None, 0):
            return False
        message["properties"]["delivery_tag"] = str(uuid.uuid4())
        message["properties"].setdefault("delivery_info", {})["redelivered"] = True
        moved = False

        def move(pipe: Any) -> None:
            nonlocal moved
            moved = False
            if pipe.hget(BROKER_UNACKED_KEY, tag) != raw:
                return  # acknowledged meanwhile
            pipe.multi()
            pipe.hdel(BROKER_UNACKED_KEY, tag)
            pipe.zrem(BROKER_UNACKED_INDEX_KEY, tag)
            pipe.rpush(queue, json.dumps(message))  # consumers BRPOP: the right end is taken next
            moved = True

        self.redis.transaction(move, BROKER_UNACKED_KEY)
        return moved

    # --- metrics ---------------------------------------------------------------------------------
    def metrics_snapshot(self, queues: list[str]) -> MetricsSnapshot:
        """Everything app/metrics.py exposes, read in one round trip."""
        declared = {"queue_wait_seconds": QUEUE_WAIT_BUCKETS, "job_duration_seconds": JOB_DURATION_BUCKETS}
        for label in [*map(str, SIZE_BUCKETS), "larger"]:
            declared[f"step_seconds:{label}"] = STEP_SECONDS_BUCKETS
        histogram_names = list(declared)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(METRICS_COUNTS_KEY)
            pipe.zcard(QUEUE_KEY)
            pipe.zcard(RUNNING_KEY)
            pipe.hgetall(WORKERS_KEY)
            for queue in queues:
                pipe.llen(queue)
            for name in histogram_names:
                pipe.hgetall(histogram_key(name))
            replies = pipe.execute()
        counts, queued, running, workers = replies[:4]
        depths = replies[4 : 4 + len(queues)]
        histograms = dict(zip(histogram_names, replies[4 + len(queues) :], strict=True))
        fresh = time.time() - WORKER_LIVE_SECONDS
        return MetricsSnapshot(
            counts={name: int(value) for name, value in counts.items()},
            jobs_by_status={"queued": int(queued), "running": int(running)},
            queue_depths=dict(zip(queues, (int(depth) for depth in depths), strict=True)),
            live_workers=sum(1 for seen in workers.values() if float(seen) >= fresh),
            histograms={name: _histogram(raw, declared[name]) for name, raw in histograms.items()},
        )


@dataclass(frozen=True)
class Histogram:
    """A Redis-held histogram: cumulative (upper bound, count) pairs ending with +Inf, sum, count."""

    buckets: list[tuple[str, int]]
    sum: float
    count: int


def _histogram(raw: dict[str, str], bounds: tuple[float, ...]) -> Histogram:
    """Cumulative buckets from the per-bucket counts JobStore._observe keeps (b:{bound}, b:+Inf)."""
    cumulative, total = [], 0
    for bound in bounds:
        total += int(raw.get(f"b:{bound!r}", 0))
        cumulative.append((repr(bound), total))
    cumulative.append(("+Inf", total + int(raw.get("b:+Inf", 0))))
    return Histogram(cumulative, float(raw.get("sum", 0.0)), int(raw.get("count", 0)))


@dataclass(frozen=True)
class MetricsSnapshot:
    """Fleet-wide job numbers (JobStore.metrics_snapshot): counters since the Redis was new, gauges now."""

    counts: dict[str, int]  # submitted, succeeded, failed, cancelled, preempted, redelivered
    jobs_by_status: dict[str, int]  # queued, running (finished jobs are the counters)
    queue_depths: dict[str, int]  # broker messages waiting per Celery queue
    live_workers: int  # workers whose heartbeat is fresher than WORKER_LIVE_SECONDS
    histograms: dict[str, Histogram]


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
