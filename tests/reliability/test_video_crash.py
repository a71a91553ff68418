"""A video job's worker killed mid-clip (SIGKILL): the job is redelivered and the next worker goes on
from the frame after the last finished one, not from frame 1; the finished frames are not redone.
A cancel mid-clip keeps the finished frames as the result."""

from __future__ import annotations

import time
from collections.abc import Callable

from core.jobs import JobStore
from core.storage import LocalStorage, frame_key
from tests.support.clips import encode, pan, photo, streams, submit_clip
from tests.support.faults import kill, start_worker
from tests.support.images import png_bytes
from tests.support.stack import Process, Stack

CRASH_ENV = {"ATELIER_JOB_LEASE_SECONDS": "3"}
CLIP = encode(pan(photo(), 12, 40, 40), fps=8)
STYLE = png_bytes(40, 40, seed=51)
OPTIONS = {"size": 40, "iterations": 10, "frame_iterations": 6, "preview_every": 0}


def _frames_done(stack: Stack, job_id: str) -> int:
    with stack.redis() as redis:
        record = JobStore(redis, ttl_seconds=600).get(job_id)
    assert record is not None
    return record.frames_done


def _wait_for_frames(stack: Stack, job_id: str, frames: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while _frames_done(stack, job_id) < frames:
        assert time.monotonic() < deadline, stack.status(job_id)
        assert stack.status(job_id)["status"] in ("queued", "running"), stack.status(job_id)
        time.sleep(0.05)


def _workers(stack: Stack) -> list[str]:
    return [name for name in stack.processes if name != "web" and not name.startswith("redis")]


def test_a_killed_worker_s_clip_resumes_at_the_next_unfinished_frame(
    stack_factory: Callable[..., Stack],
) -> None:
    crashing = stack_factory("video-crash", CRASH_ENV)
    response = submit_clip(crashing, CLIP, [STYLE], **OPTIONS)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    _wait_for_frames(crashing, job_id, 3)

    first: Process = [kill(crashing, name) for name in _workers(crashing)][0]  # SIGKILL: nothing saved
    done_at_kill = _frames_done(crashing, job_id)
    storage = LocalStorage(crashing.storage_dir)
    frame_one = storage.read_bytes(frame_key(job_id, 1))
    start_worker(crashing, "worker-2", template=first, pool="solo")
    final = crashing.wait_for(job_id, {"succeeded", "failed", "cancelled"}, timeout=180)

    assert final["status"] == "succeeded", final
    assert final["attempts"] == 2
    assert final["stats"]["resumed_after_frame"] == done_at_kill >= 3
    assert final["video"]["frames_done"] == 12
    assert storage.read_bytes(frame_key(job_id, 1)) == frame_one  # not stylised again
    log = crashing.processes["worker-2"].tail(400)
    assert f"job {job_id}: resuming the video after frame {done_at_kill}" in log
    with crashing.client as client:
        result = client.get(final["video"]["video_url"])
    assert streams(result.content)["video"]["frames"] == 12


def test_a_cancelled_clip_keeps_its_finished_frames(stack: Stack) -> None:
    response = submit_clip(stack, CLIP, [STYLE], **OPTIONS)
    job_id, token = response.json()["id"], response.json()["token"]
    _wait_for_frames(stack, job_id, 2)
    with stack.client as client:
        assert client.post(f"/api/jobs/{job_id}/cancel", headers={"X-Job-Token": token}).status_code == 200
    final = stack.wait_for(job_id, {"succeeded", "failed", "cancelled"}, timeout=60)

    assert final["status"] == "cancelled", final
    kept = final["video"]["frames_done"]
    assert 2 <= kept < 12
    assert f"cancelled after {kept} of 12 frame(s); the finished frames are kept" in final["error"]
    with stack.client as client:
        result = client.get(final["video"]["video_url"])
    assert result.status_code == 200 and streams(result.content)["video"]["frames"] == kept
