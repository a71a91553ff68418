"""Cancellation through the real worker: during a run, and while queued (it never runs)."""

from __future__ import annotations

import time

from tests.support.images import png_bytes
from tests.support.stack import Stack

LONG = {"size": 64, "iterations": 2000}  # minutes of work: only ever ends by being cancelled


def _submit(stack: Stack, seed: int, **options: object) -> str:
    response = stack.submit(png_bytes(64, 64, seed=seed), [png_bytes(64, 64, seed=seed + 1)], **options)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_cancel_during_run_stops_within_seconds_and_worker_takes_next_job(stack: Stack) -> None:
    job_id = _submit(stack, 10, **LONG)
    stack.wait_for(job_id, {"running"})
    while stack.status(job_id)["step"] < 3:
        time.sleep(0.05)

    asked = time.monotonic()
    with stack.client as client:
        response = client.post(f"/api/jobs/{job_id}/cancel")
    assert response.status_code == 200
    assert response.json()["cancel_requested"] is True
    final = stack.wait_for(job_id, {"cancelled", "succeeded", "failed"}, timeout=10)
    took = time.monotonic() - asked

    assert final["status"] == "cancelled"
    assert took < 5
    assert 3 <= final["step"] < 2000
    assert final["result_url"] is None
    with stack.client as client:
        assert client.get(f"/api/jobs/{job_id}/result").status_code == 404
        again = client.post(f"/api/jobs/{job_id}/cancel")
    assert again.status_code == 409

    next_id = _submit(stack, 12, size=32, iterations=3)
    assert stack.wait_for(next_id, {"succeeded", "failed", "cancelled"}, timeout=60)["status"] == "succeeded"


def test_job_cancelled_while_queued_never_runs(stack: Stack) -> None:
    stack.wait_idle()
    blocker = _submit(stack, 20, **LONG)
    stack.wait_for(blocker, {"running"})
    queued = _submit(stack, 22, size=32, iterations=3)
    assert stack.status(queued)["status"] == "queued"
    assert stack.queue_length() == 1

    with stack.client as client:
        response = client.post(f"/api/jobs/{queued}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"  # at once, no worker involved

    with stack.client as client:
        client.post(f"/api/jobs/{blocker}/cancel")
    stack.wait_for(blocker, {"cancelled"}, timeout=10)
    follower = _submit(stack, 24, size=32, iterations=3)
    assert stack.wait_for(follower, {"succeeded", "failed"}, timeout=60)["status"] == "succeeded"

    # The worker has taken the cancelled job's message (the follower ran after it) and skipped it.
    assert stack.queue_length() == 0
    never_ran = stack.status(queued)
    assert never_ran["status"] == "cancelled"
    assert never_ran["started_at"] is None
    assert never_ran["step"] == 0
    assert not (stack.storage_dir / "jobs" / queued / "result.png").exists()
    assert not (stack.storage_dir / "jobs" / queued / "preview.jpg").exists()
