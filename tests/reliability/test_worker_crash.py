"""A worker killed mid-job: the job is redelivered, resumes from its checkpoint on another worker and
succeeds once; a job whose workers keep dying fails after ATELIER_JOB_MAX_ATTEMPTS."""

from __future__ import annotations

import time
from collections.abc import Callable

from celery import Celery

from core.jobs import JobStore, new_job_id
from core.storage import LocalStorage, content_key, style_key
from tests.support.faults import kill, kill_pool_child, start_worker
from tests.support.images import image_size, png_bytes
from tests.support.stack import Process, Stack

# Leases lapse 3 s after a worker dies, and Redis hands its unacknowledged job to another worker then
# (the visibility timeout is the lease; live workers renew their messages: worker/lease.py).
CRASH_ENV = {
    "ATELIER_JOB_LEASE_SECONDS": "3",
    "ATELIER_CHECKPOINT_EVERY": "10",
}
# Killed after step 15 (checkpoint at 10); the rest leaves ~20 steps of margin for the kill to land
# before the end (80 made each test several seconds longer for nothing).
ITERATIONS = 40
# Both crash tests share one stack. The first kills its solo worker and starts the prefork worker the
# second needs as the replacement (a worker start costs ~5 s of CPU: TensorFlow); the second, alone,
# kills what it finds and starts that prefork worker itself.
CRASH_STACK = "worker-crash"
PREFORK = "prefork"


def _kill_workers(stack: Stack) -> Process:
    """SIGKILL every worker of the stack (the other test leaves its own behind, idle); returns one, whose
    command is the template of the next worker (start_worker with an explicit pool)."""
    names = [name for name in stack.processes if name != "web" and not name.startswith("redis")]
    assert names, stack.processes
    return [kill(stack, name) for name in names][0]


def _checkpoint_step(stack: Stack, job_id: str) -> int:
    """The step of the job's last checkpoint, as the killed run left it (not 0: it ran past step 10)."""
    with stack.redis() as redis:
        record = JobStore(redis, ttl_seconds=600).get(job_id)
    assert record is not None and record.checkpoint_step >= 10 and record.checkpoint_step % 10 == 0
    return record.checkpoint_step


def _submit_and_run_past_first_checkpoint(stack: Stack, seed: int, timeout: float) -> str:
    """Submit an ITERATIONS-step job and return its id once it runs past step 15 (checkpoint at 10)."""
    response = stack.submit(
        png_bytes(48, 48, seed=seed),
        [png_bytes(48, 48, seed=seed + 1)],
        size=32,
        iterations=ITERATIONS,
        preview_every=0,
    )
    job_id = response.json()["id"]
    status = stack.wait_for(job_id, {"running", "succeeded"}, timeout=timeout)
    while status["status"] == "running" and status["step"] < 15:
        time.sleep(0.02)
        status = stack.status(job_id)
    assert status["status"] == "running", "the job finished before its worker could be killed"
    return job_id


def test_a_killed_worker_s_job_resumes_from_its_checkpoint_on_a_new_worker(
    stack_factory: Callable[..., Stack],
) -> None:
    crashing = stack_factory(CRASH_STACK, CRASH_ENV)
    job_id = _submit_and_run_past_first_checkpoint(crashing, seed=70, timeout=60)

    first_worker = _kill_workers(crashing)  # SIGKILL: no ack, no status update, nothing saved
    killed_at = time.monotonic()
    checkpoint = _checkpoint_step(crashing, job_id)
    start_worker(crashing, PREFORK, template=first_worker, pool="prefork")
    during = crashing.status(job_id)
    final = crashing.wait_for(job_id, {"succeeded", "failed", "cancelled"}, timeout=90)
    recovered_in = time.monotonic() - killed_at

    assert during["status"] == "running" and during["attempts"] == 1
    assert final["status"] == "succeeded", final
    assert final["attempts"] == 2  # the status shows the retry
    assert final["stats"]["steps"] == ITERATIONS
    second_log = crashing.processes[PREFORK].tail(400)
    assert f"job {job_id}: redelivered after its worker stopped; attempt 2 of 3" in second_log
    assert f"job {job_id}: resuming from the checkpoint of step {checkpoint}" in second_log
    assert f"job {job_id}: succeeded" in second_log
    assert f"job {job_id}: succeeded" not in first_worker.tail(400)  # the result is written once
    with crashing.client as client:
        result = client.get(final["result_url"])
    assert result.status_code == 200 and image_size(result.content) == (32, 32)
    job_files = {path.rsplit("/", 1)[1] for path in crashing.stored_files() if job_id in path}
    assert job_files == {"content.png", "style-0.png", "result.png"}  # the checkpoint is gone
    assert recovered_in < 75


def test_a_job_whose_workers_keep_dying_fails_after_the_last_attempt(stack: Stack) -> None:
    # The state three crashed deliveries leave behind: running, attempt 3 of 3, its lease lapsed.
    job_id = new_job_id()
    storage = LocalStorage(stack.storage_dir)
    storage.write_bytes(content_key(job_id), png_bytes(48, 48, seed=72))
    storage.write_bytes(style_key(job_id, 0), png_bytes(48, 48, seed=73))
    with stack.redis() as redis:
        store = JobStore(redis, ttl_seconds=600)
        store.create(job_id, {"size": 32, "iterations": 2, "preset": "quick"}, style_count=1)
        for ghost in ("ghost-1", "ghost-2", "ghost-3"):
            assert store.claim(job_id, ghost, lease_seconds=0.05, max_attempts=3).outcome != "leased"
            time.sleep(0.1)
    broker = Celery("redelivery", broker=stack.redis_url)

    broker.send_task("worker.tasks.stylize", args=[job_id], queue=stack.queue_name)  # the 4th delivery
    final = stack.wait_for(job_id, {"succeeded", "failed"}, timeout=60)

    assert final["status"] == "failed"
    assert final["attempts"] == 3
    assert final["error"].startswith("gave up after 3 attempt(s): the worker running it stopped each time")
    assert final["result_url"] is None


def test_a_killed_pool_process_s_job_is_requeued_at_once_and_resumes(
    stack_factory: Callable[..., Stack],
) -> None:
    # `make run` runs a prefork worker: the OOM killer takes its pool process, the parent survives,
    # and (task_reject_on_worker_lost) puts the job straight back on the queue at once.
    crashing = stack_factory(CRASH_STACK, CRASH_ENV)
    worker = crashing.processes.get(PREFORK) or start_worker(
        crashing, PREFORK, template=_kill_workers(crashing), pool="prefork"
    )
    job_id = _submit_and_run_past_first_checkpoint(crashing, seed=74, timeout=90)

    kill_pool_child(worker)
    killed_at = time.monotonic()
    checkpoint = _checkpoint_step(crashing, job_id)
    final = crashing.wait_for(job_id, {"succeeded", "failed", "cancelled"}, timeout=90)

    assert final["status"] == "succeeded", final
    assert final["attempts"] == 2 and final["stats"]["steps"] == ITERATIONS
    log = worker.tail(600)
    assert f"job {job_id}: resuming from the checkpoint of step {checkpoint}" in log
    # Requeued at once: the time is the replacement pool process building its model, then the steps.
    assert time.monotonic() - killed_at < 60
