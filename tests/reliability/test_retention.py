"""Retention: finished jobs and their files expire after ATELIER_JOB_TTL_SECONDS (the worker's periodic
clean-up), and DELETE /api/jobs/{id} removes a job's keys and files at once."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.support.images import png_bytes
from tests.support.stack import Stack

FINAL = {"succeeded", "failed", "cancelled"}


def _redis_keys_of(stack: Stack, job_id: str) -> list[str]:
    with stack.redis() as redis:
        keys = [key for key in redis.scan_iter(match="*", count=1000) if job_id in key]
        indexed = [name for name in ("atelier:queue", "atelier:finished") if redis.zscore(name, job_id)]
    return keys + indexed


def _files_of(stack: Stack, job_id: str) -> set[str]:
    return {path for path in stack.stored_files() if job_id in path}


def test_finished_jobs_and_their_files_expire_after_the_ttl(stack_factory: Callable[..., Stack]) -> None:
    short_lived = stack_factory(
        "retention", {"ATELIER_JOB_TTL_SECONDS": "3", "ATELIER_CLEANUP_INTERVAL_SECONDS": "1"}
    )
    response = short_lived.submit(
        png_bytes(48, 48, seed=60), [png_bytes(48, 48, seed=61)], size=32, iterations=2
    )
    job_id = response.json()["id"]
    assert short_lived.wait_for(job_id, FINAL, timeout=60)["status"] == "succeeded"
    assert "result.png" in {path.rsplit("/", 1)[1] for path in _files_of(short_lived, job_id)}

    deadline = time.monotonic() + 20
    while _files_of(short_lived, job_id) or _redis_keys_of(short_lived, job_id):
        assert time.monotonic() < deadline, (
            _files_of(short_lived, job_id),
            _redis_keys_of(short_lived, job_id),
        )
        time.sleep(0.2)

    with short_lived.client as client:
        assert client.get(f"/api/jobs/{job_id}").status_code == 404
        assert client.get(f"/api/jobs/{job_id}/result").status_code == 404
    assert f"job {job_id}: expired, files deleted" in short_lived.processes["worker"].tail(400)
    assert not (short_lived.storage_dir / "jobs" / job_id).exists()


def test_delete_removes_a_finished_job_and_a_queued_one_at_once(stack: Stack) -> None:
    styles = [png_bytes(48, 48, seed=63)]
    finished = stack.submit(png_bytes(48, 48, seed=62), styles, size=32, iterations=2).json()["id"]
    assert stack.wait_for(finished, FINAL, timeout=60)["status"] == "succeeded"
    blocker = stack.submit(png_bytes(64, 64, seed=64), styles, size=64, iterations=2000).json()["id"]
    stack.wait_for(blocker, {"running"}, timeout=60)
    queued = stack.submit(png_bytes(48, 48, seed=65), styles, size=32, iterations=2).json()["id"]

    with stack.client as client:
        deleted_finished = client.delete(f"/api/jobs/{finished}")
        deleted_queued = client.delete(f"/api/jobs/{queued}")
        running_refused = client.delete(f"/api/jobs/{blocker}")
        client.post(f"/api/jobs/{blocker}/cancel")
        stack.wait_for(blocker, FINAL, timeout=60)
        deadline = time.monotonic() + 30  # the deleted job's message reaches the worker: nothing to run
        while f"job {queued}: no record" not in stack.processes["worker"].tail(400):
            assert time.monotonic() < deadline, "the worker never received the deleted job's message"
            time.sleep(0.1)
        after = {job_id: client.get(f"/api/jobs/{job_id}").status_code for job_id in (finished, queued)}

    assert (deleted_finished.status_code, deleted_queued.status_code) == (204, 204)
    assert running_refused.status_code == 409
    assert after == {finished: 404, queued: 404}
    for job_id in (finished, queued):
        assert _files_of(stack, job_id) == set() and _redis_keys_of(stack, job_id) == []
    assert _files_of(stack, blocker)  # other jobs keep theirs
