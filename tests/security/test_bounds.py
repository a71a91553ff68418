"""Every resource a client can ask for is bounded: queued jobs (503 + Retry-After), submissions per
client per minute (429 + Retry-After), size and steps whatever the preset, the job's run time."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.ratelimit import RateLimited, count_submission
from tests.security.helpers import CONTENT, STYLE, leaves_no_trace, stranger
from tests.support.inprocess import InProcessWeb
from tests.support.stack import REPO_ROOT, Stack

NOT_AN_IMAGE = b"<html><body>hello</body></html>"


# In-process web apps with their own limits (and Redis databases): no worker, jobs stay queued.
@pytest.fixture(scope="module")
def capped(web_factory: Callable[..., InProcessWeb]) -> InProcessWeb:
    return web_factory("security-queue-cap", {"ATELIER_MAX_QUEUED_JOBS": "2"})


@pytest.fixture(scope="module")
def rate_limited(web_factory: Callable[..., InProcessWeb]) -> InProcessWeb:
    return web_factory("security-rate-limit", {"ATELIER_RATE_LIMIT_PER_MINUTE": "3"})


def cancel(stack: Stack, job_id: str, token: str) -> None:
    with stranger(stack) as client:
        assert client.post(f"/api/jobs/{job_id}/cancel", headers={"X-Job-Token": token}).status_code == 200


def test_a_full_queue_refuses_with_503_and_retry_after_and_stores_nothing(capped: Stack) -> None:
    accepted = [capped.submit(CONTENT, [STYLE]) for _ in range(2)]
    assert [response.status_code for response in accepted] == [202, 202]

    with leaves_no_trace(capped):
        refused = capped.submit(CONTENT, [STYLE])
    assert refused.status_code == 503
    assert "the queue is full" in refused.json()["detail"]
    assert "ATELIER_MAX_QUEUED_JOBS" in refused.json()["detail"]
    assert int(refused.headers["retry-after"]) > 0

    # The cap counts waiting jobs: once one leaves the queue there is room again.
    first = accepted[0].json()
    cancel(capped, first["id"], first["token"])
    again = capped.submit(CONTENT, [STYLE])
    assert again.status_code == 202
    for body in (accepted[1].json(), again.json()):
        cancel(capped, body["id"], body["token"])


def stored_job_ids(stack: Stack) -> set[str]:
    return {path.split("/")[1] for path in stack.stored_files()}


def test_concurrent_submissions_never_overshoot_the_queue_cap(capped: Stack) -> None:
    capped.wait_idle()
    stored_before = stored_job_ids(capped)
    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(lambda _: capped.submit(CONTENT, [STYLE]), range(6)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [202, 202, 503, 503, 503, 503]
    accepted_ids = {response.json()["id"] for response in responses if response.status_code == 202}
    assert set(capped.busy_job_ids()) == accepted_ids
    # A submission refused by the atomic check in the job store had written its images: removed.
    assert stored_job_ids(capped) - stored_before == accepted_ids
    for response in responses:
        if response.status_code == 202:
            cancel(capped, response.json()["id"], response.json()["token"])


def wait_for_a_fresh_minute_if_near_its_end(margin_seconds: float = 10) -> None:
    """The limit counts per clock minute: start with enough of it left for the whole test."""
    left = 60 - time.time() % 60
    if left < margin_seconds:
        time.sleep(left + 0.1)


def test_more_submissions_than_the_rate_limit_get_429_with_retry_after(rate_limited: Stack) -> None:
    wait_for_a_fresh_minute_if_near_its_end()
    # Refused submissions count too: a client probing the validator is limited like one queueing jobs.
    assert rate_limited.submit(NOT_AN_IMAGE, [STYLE]).status_code == 415
    assert rate_limited.submit(CONTENT, [STYLE], size=5).status_code == 422
    accepted = rate_limited.submit(CONTENT, [STYLE])
    assert accepted.status_code == 202

    with leaves_no_trace(rate_limited):
        over = rate_limited.submit(CONTENT, [STYLE])
        files = [("content", ("c.png", CONTENT, "image/png")), ("style", ("s.png", STYLE, "image/png"))]
        with stranger(rate_limited) as client:
            form_over = client.post("/jobs", files=files, follow_redirects=False)
            status = client.get(f"/api/jobs/{accepted.json()['id']}")

    assert over.status_code == 429
    assert "ATELIER_RATE_LIMIT_PER_MINUTE" in over.json()["detail"]
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert form_over.status_code == 429  # the HTML form shares the limit and shows the message
    assert "too many submissions" in form_over.text and form_over.headers["retry-after"]
    assert status.status_code == 200  # reading is not limited, only submitting
    cancel(rate_limited, accepted.json()["id"], accepted.json()["token"])


def test_the_rate_limit_window_resets_and_clients_are_counted_apart(web_only: Stack) -> None:
    minute = 60 * 1_000_000  # a clock minute far from now, so no real submission shares its keys
    with web_only.redis() as redis:
        for _ in range(2):
            count_submission(redis, "192.0.2.1", limit=2, now=minute + 1)
        with pytest.raises(RateLimited) as refused:
            count_submission(redis, "192.0.2.1", limit=2, now=minute + 45.5)
        count_submission(redis, "192.0.2.2", limit=2, now=minute + 46)  # another client
        count_submission(redis, "192.0.2.1", limit=2, now=minute + 60)  # the next minute
        counters = list(redis.scan_iter(match="atelier:ratelimit:*"))
        ttls = [redis.ttl(key) for key in counters]

    assert refused.value.retry_after == 15
    assert counters and all(0 < ttl <= 120 for ttl in ttls)  # counters never outlive two minutes


def test_size_and_steps_are_capped_whatever_the_preset(web_factory: Callable[..., InProcessWeb]) -> None:
    small = web_factory("security-small-limits", {"ATELIER_MAX_SIZE": "128", "ATELIER_MAX_ITERATIONS": "50"})
    for preset in ("quick", "standard", "high"):
        response = small.submit(CONTENT, [STYLE], preset=preset)
        assert response.status_code == 202, response.text
        options = small.status(response.json()["id"])["options"]
        assert options["size"] <= 128 and options["iterations"] <= 50
        cancel(small, response.json()["id"], response.json()["token"])
    with leaves_no_trace(small):
        too_big = small.submit(CONTENT, [STYLE], preset="high", size=129)
        too_long = small.submit(CONTENT, [STYLE], preset="quick", iterations=51)
    assert too_big.status_code == 422 and "ATELIER_MAX_SIZE" in too_big.json()["detail"]
    assert too_long.status_code == 422 and "ATELIER_MAX_ITERATIONS" in too_long.json()["detail"]


def test_the_worker_runs_jobs_under_the_configured_soft_and_hard_time_limits() -> None:
    # tests/worker/test_failures.py shows a job stopped at the soft limit; this shows the hard limit
    # (the prefork child is killed) reaches Celery from the setting too.
    probe = (
        "import json, worker.celery_app as c; "
        "print(json.dumps([c.app.conf.task_soft_time_limit, c.app.conf.task_time_limit]))"
    )
    env = {"ATELIER_JOB_SOFT_TIME_LIMIT": "30", "ATELIER_JOB_HARD_TIME_LIMIT": "45", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [30, 45]
