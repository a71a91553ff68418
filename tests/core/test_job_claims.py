"""Claims of delivered jobs against a real Redis: leases tell a crashed worker from a live one, and
redeliveries are capped so a job that kills its worker cannot loop."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from core.jobs import JobStore, job_key, new_job_id
from core.retention import cleanup, delete_job
from core.storage import LocalStorage, content_key, result_key
from tests.support.scratch import scratch_job_store
from tests.support.stack import RedisServer
from tests.support.storage import holds

OPTIONS = {"size": 64, "iterations": 10}


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[JobStore]:
    yield from scratch_job_store(redis_server, 4)


def test_a_redelivered_running_job_waits_for_the_lease_then_resumes_until_the_cap(store: JobStore) -> None:
    job_id = new_job_id()
    store.create(job_id, OPTIONS, style_count=1)

    claimed_at = time.time()
    first = store.claim(job_id, "w1", lease_seconds=0.3, max_attempts=3)
    while_alive = store.claim(job_id, "w2", lease_seconds=0.3, max_attempts=3)
    time.sleep(0.4)  # w1 died: nobody renews its lease
    second = store.claim(job_id, "w2", lease_seconds=0.3, max_attempts=3)
    assert store.renew_lease(job_id, "w1", 0.3) is False  # w1's lease is gone for good
    time.sleep(0.4)
    third = store.claim(job_id, "w3", lease_seconds=0.3, max_attempts=3)
    time.sleep(0.4)
    fourth = store.claim(job_id, "w4", lease_seconds=0.3, max_attempts=3)

    assert (first.outcome, first.attempts) == ("started", 1)
    # w1's lease, from its claim (not from now: a loaded machine may stall between the calls); the
    # record keeps lease times to 0.1 ms, so allow that rounding.
    assert while_alive.outcome == "leased" and while_alive.lease_until >= claimed_at + 0.3 - 0.001
    assert (second.outcome, second.attempts) == ("resumed", 2)
    assert (third.outcome, third.attempts) == ("resumed", 3)
    assert (fourth.outcome, fourth.attempts) == ("exhausted", 3)
    record = store.get(job_id)
    assert record.status == "running" and record.attempts == 3 and record.worker == "w3"


def test_a_renewed_lease_keeps_the_job_with_its_worker(store: JobStore) -> None:
    job_id = new_job_id()
    store.create(job_id, OPTIONS, style_count=1)
    store.claim(job_id, "w1", lease_seconds=0.3, max_attempts=3)

    for _ in range(4):
        time.sleep(0.15)
        assert store.renew_lease(job_id, "w1", 0.3) is True

    assert store.claim(job_id, "w2", lease_seconds=0.3, max_attempts=3).outcome == "leased"
    store.finish(job_id, "succeeded", has_result=True)
    assert store.claim(job_id, "w2", lease_seconds=0.3, max_attempts=3).outcome == "finished"
    assert store.renew_lease(job_id, "w1", 0.3) is False  # a finished job has no lease to renew
    assert store.claim(new_job_id(), "w2", lease_seconds=0.3, max_attempts=3).outcome == "missing"


def test_cleanup_deletes_expired_jobs_files_and_delete_job_removes_one_now(
    store: JobStore, tmp_path: object
) -> None:
    storage = LocalStorage(tmp_path)  # type: ignore[arg-type]
    expired_store = JobStore(store.redis, ttl_seconds=1)
    old, kept, deleted = new_job_id(), new_job_id(), new_job_id()
    for job_id in (old, kept, deleted):
        store.create(job_id, OPTIONS, style_count=1)
        storage.write_bytes(content_key(job_id), b"png")
        storage.write_bytes(result_key(job_id), b"png")
    expired_store.finish(old, "succeeded", has_result=True)  # record expires after 1 s
    time.sleep(1.2)
    expired_store.finish(kept, "succeeded", has_result=True)  # finished just now: kept for 1 s more
    report = cleanup(expired_store, storage)
    delete_job(deleted, store, storage)

    assert report.expired_jobs == [old] and report.failed_jobs == []
    assert store.get(old) is None and not holds(storage, content_key(old))
    assert store.get(kept) is not None and holds(storage, result_key(kept))
    assert store.get(deleted) is None and not holds(storage, content_key(deleted))
    assert cleanup(expired_store, storage).expired_jobs == []  # each job is handed out once
    left = [key for key in store.redis.keys("*") if not key.startswith("atelier:metrics:")]  # fleet-wide
    assert sorted(left) == sorted([f"atelier:job:{kept}", "atelier:finished"])


def test_cleanup_fails_a_running_job_that_no_worker_will_resume(store: JobStore, tmp_path: object) -> None:
    # E.g. the hard time limit killed its process: Celery acknowledged the message, nothing redelivers it.
    abandoned, alive = new_job_id(), new_job_id()
    for job_id in (abandoned, alive):
        store.create(job_id, OPTIONS, style_count=1)
    store.claim(abandoned, "dead", lease_seconds=0.05, max_attempts=3)
    store.claim(alive, "busy", lease_seconds=30, max_attempts=3)
    time.sleep(0.3)

    report = cleanup(store, LocalStorage(tmp_path), abandon_after=0.2)  # type: ignore[arg-type]

    assert report.abandoned_jobs == [abandoned]
    failed = store.get(abandoned)
    assert failed.status == "failed" and "no worker resumed it" in failed.error
    assert store.redis.ttl(f"atelier:job:{abandoned}") > 0  # it expires like any finished job
    assert store.get(alive).status == "running"
    assert store.claim(abandoned, "late", lease_seconds=1, max_attempts=3).outcome == "finished"
    store.finish(alive, "succeeded")
    assert not store.redis.exists("atelier:running")  # the index empties as jobs finish


def test_a_job_handed_back_by_a_stopping_worker_resumes_at_once_without_an_attempt(store: JobStore) -> None:
    job_id = new_job_id()
    store.create(job_id, OPTIONS, style_count=1)
    for worker in ("w1", "w2", "w3"):  # three crashes: the attempts are used up
        assert store.claim(job_id, worker, lease_seconds=0.05, max_attempts=3).outcome in (
            "started",
            "resumed",
        )
        time.sleep(0.1)
    store.claim(job_id, "w4", lease_seconds=30, max_attempts=3)  # exhausted: nothing changes
    assert store.get(job_id).worker == "w3"  # type: ignore[union-attr]
    store.renew_lease(job_id, "w3", 30)

    assert store.release(job_id, "w9") is False  # only the worker holding the lease may
    assert store.release(job_id, "w3") is True  # w3 is stopped (SIGTERM)
    assert store.redis.hget(job_key(job_id), "handed_back") == "1"  # the flag's one name
    assert store.fail_abandoned(0, "abandoned") == []  # its message waits in the queue, however long
    resumed = store.claim(job_id, "w5", lease_seconds=30, max_attempts=3)  # at once: no lease to wait out
    again = store.claim(job_id, "w6", lease_seconds=30, max_attempts=3)

    assert (resumed.outcome, resumed.attempts, resumed.handed_back) == ("resumed", 3, True)
    assert again.outcome == "leased"  # w5 holds it now
    record = store.get(job_id)
    assert record is not None and record.worker == "w5" and record.attempts == 3 and record.preemptions == 1
    counts = store.metrics_snapshot([]).counts
    assert counts["preempted"] == 1 and counts["redelivered"] == 2 and counts["submitted"] == 1


def test_a_job_handed_back_under_the_flags_old_name_is_still_resumed_without_an_attempt(
    store: JobStore,
) -> None:
    # A rolling upgrade: a worker of the previous release, stopped by the deploy, wrote handed_over.
    job_id = new_job_id()
    store.create(job_id, OPTIONS, style_count=1)
    store.claim(job_id, "old", lease_seconds=30, max_attempts=3)
    store.redis.hset(job_key(job_id), mapping={"lease_until": repr(time.time() - 60), "handed_over": "1"})

    assert store.get(job_id).handed_back is True  # type: ignore[union-attr]
    assert store.fail_abandoned(0, "abandoned") == []  # its message waits in the queue
    resumed = store.claim(job_id, "new", lease_seconds=30, max_attempts=3)

    assert (resumed.outcome, resumed.attempts, resumed.handed_back) == ("resumed", 1, True)
    record = store.get(job_id)
    assert record is not None and record.worker == "new" and not record.handed_back
    assert store.redis.hget(job_key(job_id), "handed_over") is None
