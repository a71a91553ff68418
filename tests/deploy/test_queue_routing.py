"""A mixed fleet: with ATELIER_LARGE_JOB_QUEUE set, big jobs wait for the workers of that queue."""

from __future__ import annotations

from collections.abc import Callable

from tests.support.images import png_bytes
from tests.support.stack import Stack


def test_large_jobs_go_to_their_own_queue_and_small_ones_run_on_the_default_workers(
    stack_factory: Callable[..., Stack],
) -> None:
    # The stack's one worker takes only the default queue, like a CPU host in a mixed fleet.
    stack = stack_factory("routing", {"ATELIER_LARGE_JOB_QUEUE": "gpu", "ATELIER_LARGE_JOB_MIN_SIZE": "64"})
    content, style = png_bytes(80, 60, seed=1), png_bytes(64, 64, seed=2)

    large = stack.submit(content, [style], size=64, iterations=2)
    small = stack.submit(content, [style], size=32, iterations=2)
    assert large.status_code == 202 and small.status_code == 202, (large.text, small.text)
    large_id, small_id = large.json()["id"], small.json()["id"]

    # Submitted second, the small job still runs first: the large one is not on the default queue.
    assert stack.wait_for(small_id, {"succeeded", "failed", "cancelled"})["status"] == "succeeded"
    assert stack.status(large_id)["status"] == "queued"
    with stack.redis() as redis:
        assert redis.llen("gpu") == 1
        assert redis.llen(stack.queue_name) == 0
    stack.cancel_in_store(large_id)
