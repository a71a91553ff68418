"""A warm worker (worker/warm.py): the extractor is built when the worker process starts, a job of a
size the worker ran recently reuses its compiled steps, and a job with a painting it has seen its
style targets. Real Redis, worker and web app: the session's stack, whose worker other tests use
too, so this test's sizes (44x36, 36x29) and paintings (seeds 701-709) are its own."""

from __future__ import annotations

import re
import time

from tests.support.images import png_bytes
from tests.support.stack import Stack

READY = re.compile(r"VGG19 extractor ready in [\d.]+ s: .*precision (\w+) \(ATELIER_PRECISION=auto\)")


def _run_job(stack: Stack, seed: int, size: int, style_seed: int | None = None) -> dict:
    style = png_bytes(32, 32, seed=seed + 1 if style_seed is None else style_seed)
    response = stack.submit(png_bytes(44, 36, seed=seed), [style], size=size, iterations=3)
    assert response.status_code == 202, response.text
    final = stack.wait_for(response.json()["id"], {"succeeded", "failed", "cancelled"}, timeout=120)
    assert final["status"] == "succeeded", final
    return final["stats"]


def test_extractor_is_built_at_start_and_jobs_of_a_recent_size_start_warm(stack: Stack) -> None:
    log_path = stack.processes["worker"].log_path
    deadline = time.monotonic() + 60
    while not (found := READY.search(log := log_path.read_text(errors="replace"))):
        assert time.monotonic() < deadline, f"the worker never said its extractor was ready:\n{log[-4000:]}"
        time.sleep(0.2)
    assert "running on" not in log[: found.start()]  # built before any job came

    first, second, other_size, first_again = (
        _run_job(stack, 701, 44), _run_job(stack, 703, 44), _run_job(stack, 705, 36),
        _run_job(stack, 707, 44),
    )  # fmt: skip
    assert {s["precision"] for s in (first, second, other_size)} == {found.group(1)}  # logged and recorded
    assert not first["warm_start"] and second["warm_start"]  # same size: compiled steps reused
    assert not other_size["warm_start"] and first_again["warm_start"]  # a new size; the old one kept
    for stats in (first, second, other_size, first_again):
        assert 0 <= stats["first_step_seconds"] < 30
        assert stats["style_targets"] == {"cached": 0, "computed": 1}  # a painting not seen before
    # The first job's painting uploaded again with another photo: its targets come from the cache.
    same_painting = _run_job(stack, 709, 44, style_seed=702)
    assert same_painting["style_targets"] == {"cached": 1, "computed": 0}
