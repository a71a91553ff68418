"""The job store against a real Redis and nothing else (the session's redis-server, a database of its own)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from core.jobs import FINISHED_KEY, QUEUE_KEY, Claim, JobStore, Pace, cancel_key, job_key, new_job_id
from tests.support.scratch import scratch_job_store
from tests.support.stack import RedisServer

OPTIONS = {"size": 64, "iterations": 10}


def start(store: JobStore, job_id: str, worker: str) -> Claim:
    """What a worker's first delivery does: claim the job (queued -> running under a lease)."""
    return store.claim(job_id, worker, lease_seconds=30, max_attempts=3)


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[JobStore]:
    yield from scratch_job_store(redis_server, 3)


def test_create_get_and_queue_positions(store: JobStore) -> None:
    first, second = new_job_id(), new_job_id()
    record = store.create(first, OPTIONS, style_count=2)
    store.create(second, OPTIONS, style_count=1)

    assert record.status == "queued" and record.style_count == 2 and record.options == OPTIONS
    assert record.iterations == 10 and record.step == 0 and record.started_at is None
    assert store.queue_position(first) == 1
    assert store.queue_position(second) == 2
    assert store.get(new_job_id()) is None
    assert store.get("../../etc/passwd") is None

    assert start(store, first, "w1").outcome == "started"
    assert store.queue_position(first) is None
    assert store.queue_position(second) == 1
    assert start(store, first, "w2").outcome == "leased"  # a second delivery does not start it again
    assert store.get(first).worker == "w1"


def test_cancel_queued_job_is_final_and_it_can_never_start(store: JobStore) -> None:
    job_id = new_job_id()
    store.create(job_id, OPTIONS, style_count=1)

    assert store.request_cancel(job_id) == "queued"
    record = store.get(job_id)
    assert record.status == "cancelled" and record.finished_at is not None
    assert start(store, job_id, "w1").outcome == "finished"
    assert store.get(job_id).status == "cancelled"
    assert store.redis.zscore(QUEUE_KEY, job_id) is None
    assert 0 < store.redis.ttl(job_key(job_id)) <= 600


def test_cancel_running_job_sets_the_flag_until_it_finishes(store: JobStore) -> None:
    job_id = new_job_id()
    store.create(job_id, OPTIONS, style_count=1)
    start(store, job_id, "w1")
    assert store.cancel_requested(job_id) is False

    assert store.request_cancel(job_id) == "running"
    assert store.cancel_requested(job_id) is True
    assert store.get(job_id).status == "running"  # the worker decides when it has stopped

    store.finish(job_id, "cancelled", error="cancelled after 3 step(s)")
    assert store.redis.exists(cancel_key(job_id)) == 0
    assert store.request_cancel(job_id) == "cancelled"  # finished jobs stay as they are
    assert store.get(job_id).status == "cancelled"
    assert store.request_cancel(new_job_id()) is None


def test_progress_preview_and_finish_with_ttl(store: JobStore) -> None:
    job_id = new_job_id()
    store.create(job_id, OPTIONS, style_count=1)
    start(store, job_id, "w1")
    store.set_progress(job_id, 4, 10, {"total": 2.5}, 0.8)
    store.set_preview(job_id, 4)

    running = store.get(job_id)
    assert (running.step, running.iterations, running.loss, running.elapsed) == (4, 10, {"total": 2.5}, 0.8)
    assert running.preview_step == 4
    assert store.redis.ttl(job_key(job_id)) == -1  # no expiry while it runs

    store.finish(job_id, "succeeded", has_result=True, stats={"steps": 10})
    done = store.get(job_id)
    assert done.status == "succeeded" and done.has_result and done.stats == {"steps": 10}
    assert 0 < store.redis.ttl(job_key(job_id)) <= 600
    with pytest.raises(ValueError):
        store.finish(job_id, "running")  # type: ignore[arg-type]


def test_finished_jobs_count_their_style_targets_cached_and_computed(store: JobStore) -> None:
    for cached, computed in ((0, 5), (5, 0), (1, 1)):
        job_id = new_job_id()
        store.create(job_id, OPTIONS, style_count=1)
        start(store, job_id, "w1")
        stats = {"steps": 10, "style_targets": {"cached": cached, "computed": computed}}
        store.finish(job_id, "succeeded", has_result=True, stats=stats)
    counts = store.metrics_snapshot([]).counts
    assert (counts["style_targets_cached"], counts["style_targets_computed"]) == (6, 6)


def test_worker_heartbeats(store: JobStore) -> None:
    assert store.workers_last_seen() == {}
    store.worker_seen("gpu-1@host")
    assert list(store.workers_last_seen()) == ["gpu-1@host"]


def test_delete_removes_every_key(store: JobStore) -> None:
    job_id = new_job_id()
    store.create(job_id, OPTIONS, style_count=1)
    store.delete(job_id)
    assert store.get(job_id) is None
    assert store.queue_position(job_id) is None


def test_finished_jobs_are_handed_out_for_file_deletion_once_their_ttl_has_passed(store: JobStore) -> None:
    recent, old, cancelled = new_job_id(), new_job_id(), new_job_id()
    for job_id in (recent, old, cancelled):
        store.create(job_id, OPTIONS, style_count=1)
    start(store, recent, "w1")
    store.finish(recent, "succeeded", has_result=True)
    start(store, old, "w1")
    store.finish(old, "failed", error="boom")
    store.request_cancel(cancelled)  # cancelled while queued: finished too
    assert store.take_expired_job_ids() == []

    for job_id in (old, cancelled):  # as if they had finished an hour ago (TTL 600 s)
        store.redis.zadd(FINISHED_KEY, {job_id: time.time() - 3600})

    assert sorted(store.take_expired_job_ids()) == sorted([old, cancelled])
    assert store.take_expired_job_ids() == []


def test_succeeded_jobs_leave_their_pace_for_the_estimates_and_failed_ones_do_not(store: JobStore) -> None:
    paced, failed = new_job_id(), new_job_id()
    for job_id in (paced, failed):
        store.create(job_id, OPTIONS, style_count=1)
        start(store, job_id, "w1")
    stats = {"steps": 10, "engine_seconds": 3.0, "megapixels": 0.0655, "megapixel_steps": 0.655}
    store.finish(failed, "failed", error="boom", stats=stats)
    assert store.recent_paces() == []

    store.finish(paced, "succeeded", has_result=True, stats=stats)

    assert store.recent_paces() == [
        Pace(megapixels=0.0655, seconds_per_megapixel_step=pytest.approx(3.0 / 0.655))
    ]


def test_a_worker_engine_report_lasts_until_the_worker_is_gone(store: JobStore) -> None:
    store.worker_seen("w1")
    store.set_worker_engine("w1", "weights file /x.h5 does not exist")
    store.set_worker_engine("w2", None, weights="random (seed 0)", precision="float32")

    engines = store.worker_engines()
    assert engines["w1"]["ready"] is False and engines["w1"]["error"] == "weights file /x.h5 does not exist"
    assert engines["w2"]["ready"] is True and engines["w2"]["precision"] == "float32"
    store.worker_gone("w1")
    assert set(store.worker_engines()) == {"w2"}
