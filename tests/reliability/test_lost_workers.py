"""Lost and preempted workers, with real processes: two Celery workers on one real Redis.

- SIGKILL of the whole process tree of the worker running a job: the other worker resumes it from its
  checkpoint about a lease later (kombu requeues the dead worker's message: its visibility timeout is
  the lease, and live workers keep renewing theirs), and the result is written once.
- SIGTERM (docker stop, a spot notice): the job checkpoints, is handed back and continues on the other
  worker within seconds, without counting an attempt.
- A worker killed while holding a reserved job it had not started: that job is resumed too.
- A handed-back job goes to the front of the queue.
A replacement worker is started only when the next test needs a second one (each start costs ~5 s of
CPU: TensorFlow).
The timings go to tests/artifacts/recovery-report.json (one entry per case); docs/reliability.md
quotes them.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis

from core.jobs import JobRecord, JobStore
from tests.support.faults import kill, start_worker
from tests.support.images import png_bytes
from tests.support.stack import Process, Stack, spawn

REPORT = Path(__file__).resolve().parents[1] / "artifacts" / "recovery-report.json"
LEASE_SECONDS = 3.0
CHECKPOINT_EVERY = 10
ITERATIONS = 60
_replacements = itertools.count(1)  # names of replacement workers, unique in the session
# Default visibility timeout (4 h) on purpose: recovery must not wait for it.
LOST_WORKERS_ENV = {
    "ATELIER_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
    "ATELIER_CHECKPOINT_EVERY": str(CHECKPOINT_EVERY),
}


@dataclass
class Fleet:
    """The stack and the names of its live worker processes."""

    stack: Stack

    def workers(self) -> dict[str, Process]:
        return {name: process for name, process in self.stack.processes.items() if name.startswith("worker")}

    def process_running(self, record: JobRecord) -> str:
        """The name of the worker process whose hostname holds the job."""
        assert record.worker is not None
        for name, process in self.workers().items():
            hostname = _hostname_arg(process)
            if record.worker.split("@")[0] == hostname.split("@")[0]:
                return name
        raise AssertionError(f"no live worker process is {record.worker}")

    def replace(self, template: Process) -> None:
        """Start a worker like the lost one, so the next test has two again."""
        start_worker(self.stack, f"worker-r{next(_replacements)}", template=template)


def _hostname_arg(process: Process) -> str:
    args = list(process.popen.args)  # type: ignore[arg-type]
    return str(args[args.index("--hostname") + 1])


def _store(stack: Stack) -> tuple[Redis, JobStore]:
    redis = stack.redis()
    return redis, JobStore(redis, ttl_seconds=600)


def _warm(fleet: Fleet, timeout: float = 180) -> None:
    """Run tiny jobs until every worker has run one (compiling the tests' step), so timings are not
    cold starts; each new worker's extractor is built first (tiny jobs sent while it still loaded
    TensorFlow all went to the warm worker: 40 of them)."""
    deadline = time.monotonic() + timeout
    while cold := [process for process in fleet.workers().values() if "succeeded" not in process.tail(2000)]:
        for process in cold:
            while "VGG19 extractor ready" not in process.tail(2000):
                process.check_alive()
                assert time.monotonic() < deadline, f"worker {process.name} never built its extractor"
                time.sleep(0.2)
        assert time.monotonic() < deadline, f"workers {[process.name for process in cold]} never ran a job"
        ids = [  # the tests' image sizes: the steps they run are compiled here
            fleet.stack.submit(
                png_bytes(48, 48, seed=i), [png_bytes(48, 48, seed=i + 1)], size=32, iterations=2
            ).json()["id"]
            for i in range(len(cold))
        ]
        for job_id in ids:
            fleet.stack.wait_for(job_id, {"succeeded"}, timeout=120)


@pytest.fixture
def fleet(stack_factory: Callable[..., Stack]) -> Iterator[Fleet]:
    stack = stack_factory("lost-workers", LOST_WORKERS_ENV)
    fleet = Fleet(stack)
    if len(fleet.workers()) < 2:
        fleet.replace(next(iter(fleet.workers().values())))
    _warm(fleet)
    yield fleet
    for job_id in stack.busy_job_ids():  # a failed test may leave its job behind
        stack.cancel_in_store(job_id)


def _submit_and_run_past_first_checkpoint(stack: Stack, seed: int) -> tuple[str, JobRecord]:
    job_id = stack.submit(
        png_bytes(48, 48, seed=seed), [png_bytes(48, 48, seed=seed + 1)], size=32, iterations=ITERATIONS
    ).json()["id"]
    redis, store = _store(stack)
    with redis:
        deadline = time.monotonic() + 60
        while True:
            record = store.get(job_id)
            assert record is not None and record.status in ("queued", "running"), record
            if (
                record.status == "running"
                and record.checkpoint_step >= CHECKPOINT_EVERY
                and record.step >= 15
            ):
                return job_id, record
            assert time.monotonic() < deadline, f"job never ran past step 15: {record}"
            time.sleep(0.01)


@dataclass
class Recovery:
    claimed_after: float  # seconds from the fault to another worker's claim
    stepping_after: float  # ... to that worker's first progress write
    record: JobRecord  # at the claim


def _wait_for_takeover(
    stack: Stack, job_id: str, old_worker: str, fault_at: float, timeout: float
) -> Recovery:
    """Poll the job store until another worker holds the job, then until it writes progress."""
    redis, store = _store(stack)
    with redis:
        deadline = fault_at + timeout
        while (record := store.get(job_id)) is not None and record.worker == old_worker:
            assert time.monotonic() < deadline, f"no worker took the job over in {timeout} s: {record}"
            time.sleep(0.01)
        claimed = time.monotonic()
        assert record is not None and record.status == "running", record
        elapsed = record.elapsed
        while (
            (current := store.get(job_id)) is not None
            and current.status == "running"
            and current.elapsed == elapsed
        ):
            assert time.monotonic() < deadline, f"the new worker never made progress: {current}"
            time.sleep(0.01)
        return Recovery(claimed - fault_at, time.monotonic() - fault_at, record)


def _report(case: str, **seconds: float) -> None:
    """Record one case's timings (seconds from the fault) in REPORT, keeping the other cases'."""
    REPORT.parent.mkdir(exist_ok=True)
    report = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    report[case] = {name: round(value, 2) for name, value in seconds.items()} | {
        "lease_seconds": LEASE_SECONDS
    }
    REPORT.write_text(json.dumps(report, indent=2) + "\n")


def _counts(stack: Stack) -> dict[str, int]:
    with stack.redis() as redis:
        return {name: int(value) for name, value in redis.hgetall("atelier:metrics:counts").items()}


def test_sigkill_of_a_whole_worker_resumes_its_job_on_the_other_within_the_lease(fleet: Fleet) -> None:
    stack = fleet.stack
    before = _counts(stack)
    job_id, running = _submit_and_run_past_first_checkpoint(stack, seed=140)
    victim = fleet.process_running(running)
    steps_per_second = running.step / max(running.elapsed, 1e-3)

    killed = kill(stack, victim)  # SIGKILL to its process group: the whole tree, no shutdown code runs
    fault_at = time.monotonic()
    redis, store = _store(stack)
    with redis:
        checkpoint = store.get(job_id).checkpoint_step  # type: ignore[union-attr]
    recovery = _wait_for_takeover(stack, job_id, running.worker or "", fault_at, timeout=LEASE_SECONDS + 15)
    final = stack.wait_for(job_id, {"succeeded", "failed", "cancelled"}, timeout=60)
    done_after = time.monotonic() - fault_at
    _report(
        "sigkill_whole_worker",
        claimed=recovery.claimed_after,
        stepping=recovery.stepping_after,
        succeeded=done_after,
    )

    assert final["status"] == "succeeded", final
    assert final["attempts"] == 2 and final["stats"]["steps"] == ITERATIONS
    checkpoint_interval = CHECKPOINT_EVERY / steps_per_second
    assert done_after < LEASE_SECONDS + checkpoint_interval + 15
    assert recovery.claimed_after < LEASE_SECONDS + 3  # the lease, not the 4 h visibility timeout
    with stack.redis() as redis:
        assert redis.hget(f"atelier:job:{job_id}", "run_start_step") == str(checkpoint)
    rescuer = stack.processes[fleet.process_running(recovery.record)]
    log = rescuer.tail(3000)
    assert f"job {job_id}: redelivered after its worker stopped; attempt 2 of 3" in log
    assert f"job {job_id}: resuming from the checkpoint of step {checkpoint}" in log
    assert f"job {job_id}: succeeded" in log
    assert f"job {job_id}: succeeded" not in killed.tail(3000)  # the result is written once
    after = _counts(stack)
    assert after.get("succeeded", 0) - before.get("succeeded", 0) == 1
    assert after.get("redelivered", 0) - before.get("redelivered", 0) == 1
    fleet.replace(killed)


def test_sigterm_hands_the_running_job_to_the_other_worker_without_an_attempt(fleet: Fleet) -> None:
    stack = fleet.stack
    job_id, running = _submit_and_run_past_first_checkpoint(stack, seed=150)
    victim_name = fleet.process_running(running)
    victim = stack.processes.pop(victim_name)  # it exits: stack.wait_for must not count it as a crash

    os.kill(victim.popen.pid, signal.SIGTERM)  # to the main process only, as docker stop does
    fault_at = time.monotonic()
    recovery = _wait_for_takeover(stack, job_id, running.worker or "", fault_at, timeout=15)
    exit_code = victim.popen.wait(timeout=30)
    exited_after = time.monotonic() - fault_at
    fleet.replace(victim)  # now, not at the end: its start-up overlaps the rest of the job
    final = stack.wait_for(job_id, {"succeeded", "failed", "cancelled"}, timeout=60)
    _report(
        "sigterm",
        claimed=recovery.claimed_after,
        stepping=recovery.stepping_after,
        stopped_worker_exited=exited_after,
    )

    assert recovery.stepping_after < 15
    assert final["status"] == "succeeded", final
    assert (final["attempts"], final["preemptions"]) == (1, 1)  # preemption is not a crash
    assert final["stats"]["steps"] == ITERATIONS
    redis, store = _store(stack)
    with redis:
        assert store.get(job_id).preemptions == 1  # type: ignore[union-attr]
    stopped_log = victim.tail(3000)
    handed = [
        line for line in stopped_log.splitlines() if f"job {job_id}: worker" in line and "handed back" in line
    ]
    assert handed, stopped_log
    step = int(handed[0].rsplit("step ", 1)[1].split()[0])
    assert step >= running.step  # checkpointed where it was, not at the last periodic checkpoint
    rescuer_log = stack.processes[fleet.process_running(recovery.record)].tail(3000)
    assert (
        f"job {job_id}: continuing after its worker was stopped (not a crash: attempt 1 of 3)" in rescuer_log
    )
    assert f"job {job_id}: resuming from the checkpoint of step {step}" in rescuer_log
    assert f"job {job_id}: succeeded" not in stopped_log
    assert exit_code == 0 and exited_after < 15  # the shutdown did not wait for the job


def test_a_job_reserved_by_a_killed_worker_before_it_started_is_resumed(fleet: Fleet) -> None:
    # Two long jobs keep both solo workers busy; a prefork worker that prefetches two messages then
    # takes job A (running) and job B (reserved, waiting for a pool process); the blockers are
    # cancelled, and the prefork worker's whole tree is SIGKILLed.
    stack = fleet.stack
    blockers = [
        stack.submit(
            png_bytes(48, 48, seed=s), [png_bytes(48, 48, seed=s + 1)], size=32, iterations=2000
        ).json()["id"]
        for s in (160, 162)
    ]
    for blocker in blockers:
        stack.wait_for(blocker, {"running"}, timeout=60)
    template = next(iter(fleet.workers().values()))
    args = [arg for arg in template.popen.args if not str(arg).startswith("--pool")]  # type: ignore[union-attr]
    hostname_at = args.index("--hostname") + 1
    args[hostname_at] = f"prefork-{args[hostname_at]}"
    args += ["--pool=prefork", "--prefetch-multiplier=2"]
    stack.processes["prefork"] = spawn(
        "prefork", [str(arg) for arg in args], stack.env, template.log_path.parent
    )
    first, second = (
        stack.submit(
            png_bytes(48, 48, seed=s), [png_bytes(48, 48, seed=s + 1)], size=32, iterations=ITERATIONS
        ).json()["id"]
        for s in (164, 166)
    )
    redis, store = _store(stack)
    with redis:
        deadline = time.monotonic() + 90
        while not (redis.llen(stack.queue_name) == 0 and redis.hlen("unacked") == 4):
            assert time.monotonic() < deadline, "the prefork worker did not take both jobs"
            time.sleep(0.1)
        stack.wait_for(first, {"running"}, timeout=90)
        time.sleep(2 * LEASE_SECONDS)  # a live worker keeps its reserved job: nothing is requeued
        assert store.get(second).status == "queued"  # type: ignore[union-attr]
        assert redis.llen(stack.queue_name) == 0 and redis.hlen("unacked") == 4
        for blocker in blockers:
            with stack.client as client:
                assert client.post(f"/api/jobs/{blocker}/cancel").status_code in (200, 202)
            stack.wait_for(blocker, {"cancelled"}, timeout=30)

        first_worker = store.get(first).worker or ""  # type: ignore[union-attr]
        killed = kill(stack, "prefork")  # the parent (holding B) and its pool process (running A)
        fault_at = time.monotonic()
        deadline = fault_at + LEASE_SECONDS + 15
        while (record := store.get(second)) is not None and record.status == "queued":
            assert time.monotonic() < deadline, f"the reserved job was not started: {record}"
            time.sleep(0.01)
        second_started = time.monotonic() - fault_at
        recovery = _wait_for_takeover(stack, first, first_worker, fault_at, timeout=LEASE_SECONDS + 15)
    finals = [
        stack.wait_for(job_id, {"succeeded", "failed", "cancelled"}, timeout=90) for job_id in (first, second)
    ]
    _report(
        "killed_before_start", reserved_job_started=second_started, running_job_claimed=recovery.claimed_after
    )

    assert second_started < LEASE_SECONDS + 5
    assert recovery.claimed_after < LEASE_SECONDS + 5
    assert [final["status"] for final in finals] == ["succeeded", "succeeded"], finals
    assert finals[0]["attempts"] == 2 and finals[1]["attempts"] == 1
    assert f"job {second}: running" not in killed.tail(3000)  # it had only reserved B


def test_a_handed_back_job_goes_to_the_front_of_the_queue(fleet: Fleet) -> None:
    # X runs on one worker, a long job on the other, Z waits in the queue. X's worker is stopped, then
    # the long job cancelled: its worker, the next free one, must continue X before it starts Z, which
    # waited less. (A solo worker busy with a job reserves no other: Z stays in the queue meanwhile.)
    stack = fleet.stack
    job_x, running = _submit_and_run_past_first_checkpoint(stack, seed=170)
    blocker = stack.submit(
        png_bytes(48, 48, seed=172), [png_bytes(48, 48, seed=173)], size=32, iterations=2000
    ).json()["id"]
    stack.wait_for(blocker, {"running"}, timeout=60)
    job_z = stack.submit(
        png_bytes(48, 48, seed=174), [png_bytes(48, 48, seed=175)], size=32, iterations=ITERATIONS
    ).json()["id"]
    victim = stack.processes.pop(fleet.process_running(running))

    os.kill(victim.popen.pid, signal.SIGTERM)
    assert victim.popen.wait(timeout=30) == 0
    redis, store = _store(stack)
    with redis:
        assert store.get(job_z).status == "queued"  # type: ignore[union-attr]
        with stack.client as client:
            assert client.post(f"/api/jobs/{blocker}/cancel").status_code in (200, 202)
        deadline = time.monotonic() + 60
        while (record := store.get(job_x)) is not None and record.worker == running.worker:
            assert time.monotonic() < deadline, record
            time.sleep(0.02)
            assert store.get(job_z).status == "queued"  # type: ignore[union-attr]
        z_when_x_resumed = store.get(job_z).status  # type: ignore[union-attr]
    finals = [
        stack.wait_for(job_id, {"succeeded", "failed", "cancelled"}, timeout=120)
        for job_id in (job_x, job_z, blocker)
    ]

    assert z_when_x_resumed == "queued"
    assert [final["status"] for final in finals] == ["succeeded", "succeeded", "cancelled"]
    assert finals[0]["attempts"] == 1
