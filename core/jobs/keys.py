"""Every Redis key Atelier uses, and job ids (safe inside keys and storage paths).

Keys (prefix ``atelier:``):
  job:{id}          hash, the job record (core/jobs/record.py); expires job_ttl_seconds after it
                    finishes. While running it holds a lease (lease_until, worker) renewed by the worker
                    that runs it, the delivery count (attempts), the last checkpoint step and, once its
                    stopping worker handed it back, handed_back (docs/reliability.md)
  job:{id}:cancel   string "1" while a cancel has been requested
  job:{id}:webhook  list of the job's webhook delivery attempts (JSON each, oldest first); expires
                    with the record (core/webhooks.py, worker/webhooks.py)
  batch:{id}        hash, a batch of jobs (core/jobs/batches.py): its jobs' ids in grid order, each
                    one's (content, style) cell, the names of its contents and styles, its token's
                    hash, its callback; expires with its jobs
  batch:{id}:webhook  list of the batch's webhook delivery attempts, like a job's
  idempotency:{sha256 of the key}  hash {request, job_id, token}: the job an Idempotency-Key created
                    (app/idempotency.py); expires with the job
  queue             sorted set of queued job ids, scored by submission time (for queue_position)
  finished          sorted set of finished job ids, scored by finish time (their files are deleted
                    once the record's TTL has passed: see take_expired_job_ids)
  running           sorted set of running job ids, scored by their (latest) claim time: the clean-up
                    fails those whose lease lapsed long ago and that no delivery resumed
  worker:last_seen  hash {hostname: unix time} of worker heartbeats (for /readyz and the live-workers metric)
  worker:engines    hash {hostname: JSON} of what each worker's engine reported when it loaded its
                    VGG19: ready, or the error (for /readyz and the upload page's warning)
  worker:{hostname}:stopping  string "1" while that worker shuts down (SIGTERM): its running jobs
                    checkpoint, release their lease and go back to the queue (docs/reliability.md)
  metrics:counts    hash of job counters (submitted, succeeded, failed, cancelled, preempted, redelivered,
                    style_targets_cached, style_targets_computed)
  metrics:hist:{name}  hash of one histogram (core/jobs/metrics.py): b:{upper bound} (per-bucket
                    counts), sum, count
  pace              list of the last PACE_KEPT finished jobs' pace (JSON: output megapixels, seconds
                    per full-size step per megapixel), newest first: the upload page's time estimates
  ratelimit:{client}:{minute}  counter of one client's submissions in one minute (app/ratelimit.py)

The broker's keys (Celery's queues, kombu's unacknowledged messages) are kombu's: only the worker
touches their layout (worker/broker.py); the job store only reads queue lengths.
"""

from __future__ import annotations

import re
import secrets

PREFIX = "atelier:"
QUEUE_KEY = PREFIX + "queue"
FINISHED_KEY = PREFIX + "finished"
RUNNING_KEY = PREFIX + "running"
WORKERS_KEY = PREFIX + "worker:last_seen"
WORKER_ENGINES_KEY = PREFIX + "worker:engines"
PACE_KEY = PREFIX + "pace"
METRICS_COUNTS_KEY = PREFIX + "metrics:counts"
JOB_KEY_PREFIX = PREFIX + "job:"  # + a job id: the record (job_key)

_JOB_ID = re.compile(r"[0-9a-f]{32}")


def new_job_id() -> str:
    """A fresh job id: 32 lowercase hex characters, unguessable."""
    return secrets.token_hex(16)


def is_job_id(value: str) -> bool:
    """True when value has the exact shape of a job id (so it is safe inside keys and paths)."""
    return isinstance(value, str) and _JOB_ID.fullmatch(value) is not None


def job_key(job_id: str) -> str:
    if not is_job_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return JOB_KEY_PREFIX + job_id


def cancel_key(job_id: str) -> str:
    return job_key(job_id) + ":cancel"


def batch_key(batch_id: str) -> str:
    if not is_job_id(batch_id):  # batch ids have the shape of job ids
        raise ValueError(f"not a batch id: {batch_id!r}")
    return f"{PREFIX}batch:{batch_id}"


def batch_webhook_attempts_key(batch_id: str) -> str:
    return batch_key(batch_id) + ":webhook"


def webhook_attempts_key(job_id: str) -> str:
    return job_key(job_id) + ":webhook"


def idempotency_key(digest: str) -> str:
    """The record of one Idempotency-Key, by the key's SHA-256 (hex): the key itself is never stored."""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError("not a SHA-256 hex digest")
    return f"{PREFIX}idempotency:{digest}"


def worker_stopping_key(hostname: str) -> str:
    return f"{PREFIX}worker:{hostname}:stopping"


def histogram_key(name: str) -> str:
    return f"{PREFIX}metrics:hist:{name}"


def rate_limit_key(client: str, window: int) -> str:
    """The submission counter of one client (an IP address) in one time window (a minute number)."""
    # The client string comes from the connection, not the user; still keep it to a key-safe shape.
    safe_client = re.sub(r"[^0-9A-Za-z.:_-]", "_", client)[:64]
    return f"{PREFIX}ratelimit:{safe_client}:{window}"
