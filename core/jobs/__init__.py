"""The job store: every Redis key Atelier uses, the job records and the operations on them.

- keys.py: the key schema (every key, documented there) and job ids;
- record.py: JobRecord and its decoding from the job's hash, JobStatus, Claim and ClaimOutcome;
- store.py: JobStore, the operations (its atomic ones are the .lua files beside it), get_job_store;
- batches.py: BatchRecord and BatchStore, the batches of content x style jobs;
- metrics.py: the job counters and histograms kept in Redis, read back as one MetricsSnapshot.

The broker's keys are kombu's; the code that knows their layout is the worker's (worker/broker.py).
Import from core.jobs; the modules are the layout, not the interface.
"""

from core.jobs.batches import BatchRecord, BatchStore
from core.jobs.keys import (
    FINISHED_KEY,
    METRICS_COUNTS_KEY,
    PREFIX,
    QUEUE_KEY,
    RUNNING_KEY,
    WORKERS_KEY,
    cancel_key,
    histogram_key,
    is_job_id,
    job_key,
    new_job_id,
    rate_limit_key,
    worker_stopping_key,
)
from core.jobs.metrics import (
    WORKER_FRESH_SECONDS,
    WORKER_HEARTBEAT_SECONDS,
    WORKER_LIVE_SECONDS,
    Histogram,
    MetricsSnapshot,
    size_bucket,
)
from core.jobs.record import FINISHED, Claim, ClaimOutcome, JobRecord, JobStatus
from core.jobs.store import JobStore, Pace, QueueFull, get_job_store, get_redis

__all__ = [
    "BatchRecord",
    "BatchStore",
    "FINISHED",
    "FINISHED_KEY",
    "METRICS_COUNTS_KEY",
    "PREFIX",
    "QUEUE_KEY",
    "RUNNING_KEY",
    "WORKERS_KEY",
    "WORKER_FRESH_SECONDS",
    "WORKER_HEARTBEAT_SECONDS",
    "WORKER_LIVE_SECONDS",
    "Claim",
    "ClaimOutcome",
    "Histogram",
    "JobRecord",
    "JobStatus",
    "JobStore",
    "Pace",
    "MetricsSnapshot",
    "QueueFull",
    "cancel_key",
    "get_job_store",
    "get_redis",
    "histogram_key",
    "is_job_id",
    "job_key",
    "new_job_id",
    "rate_limit_key",
    "size_bucket",
    "worker_stopping_key",
]
