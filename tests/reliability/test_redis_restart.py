"""Redis killed and restarted (append-only file): queued and running jobs survive, the web answers 503
with Retry-After while it is down (never 500), and web and worker reconnect by themselves."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests.support.faults import kill, start_redis_again
from tests.support.images import png_bytes
from tests.support.stack import Stack

FINAL = {"succeeded", "failed", "cancelled"}
# Long enough for the probes (well under a second) and for the worker to hit the outage (its progress,
# cancel and lease writes fail within a second); the running job goes on meanwhile.
DOWN_SECONDS = 2.0
RUNNING_STEPS = 100  # still ~95 steps to go when Redis dies (killed at step 5 or later)


def _probe_while_down(stack: Stack, job_id: str) -> dict[str, httpx.Response]:
    """What users get while Redis is down: the API, the job's page, a submission, readiness."""
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        return {
            "status": client.get(f"/api/jobs/{job_id}"),
            "events": client.get(f"/api/jobs/{job_id}/events"),
            "result": client.get(f"/api/jobs/{job_id}/result"),
            "page": client.get(f"/jobs/{job_id}"),
            "submit": client.post(
                "/api/jobs",
                files=[
                    ("content", ("c.png", png_bytes(48, 48, seed=80), "image/png")),
                    ("style", ("s.png", png_bytes(48, 48, seed=81), "image/png")),
                ],
                data={"size": "32", "iterations": "2"},
            ),
            "readyz": client.get("/readyz"),
            "upload page": client.get("/"),
        }


def test_jobs_survive_a_redis_restart_and_the_web_answers_503_meanwhile(
    stack_factory: Callable[..., Stack],
) -> None:
    persistent = stack_factory("redis-restart", redis_persistent=True)
    styles = [png_bytes(48, 48, seed=82)]
    content = png_bytes(48, 48, seed=83)
    running = persistent.submit(content, styles, size=32, iterations=RUNNING_STEPS).json()["id"]
    queued = [
        persistent.submit(png_bytes(48, 48, seed=84 + index), styles, size=32, iterations=3).json()["id"]
        for index in range(3)
    ]
    persistent.wait_for(running, {"running"}, timeout=60)
    while (before := persistent.status(running))["step"] < 5:
        time.sleep(0.02)
    assert before["status"] == "running" and before["step"] < RUNNING_STEPS  # Redis dies mid-job

    killed = kill(persistent, "redis")  # SIGKILL: whatever is not in the append-only file is lost
    down_since = time.monotonic()
    probes = _probe_while_down(persistent, running)
    time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_since)))
    start_redis_again(persistent, killed)

    for name in ("status", "events", "result", "page", "submit", "readyz"):
        assert probes[name].status_code == 503, (name, probes[name].status_code, probes[name].text[:200])
    for name in ("status", "events", "result", "page", "submit"):
        assert probes[name].headers.get("Retry-After", "").isdigit(), name
        assert "unavailable" in probes[name].text, name
    assert probes["page"].headers["content-type"].startswith("text/html")  # a page, not JSON, for people
    assert probes["upload page"].status_code == 200  # needs no Redis
    known_jobs = [running, *queued]  # the refused submission left no files behind
    assert all(any(job in path for job in known_jobs) for path in persistent.stored_files())

    finals = {job_id: persistent.wait_for(job_id, FINAL, timeout=120) for job_id in [running, *queued]}
    assert {job_id: final["status"] for job_id, final in finals.items()} == dict.fromkeys(
        [running, *queued], "succeeded"
    )
    assert finals[running]["stats"]["steps"] == RUNNING_STEPS
    assert finals[running]["attempts"] == 1  # it ran through the outage, no redelivery needed
    worker_log = persistent.processes["worker"].tail(2000)
    assert "Redis down (the job goes on)" in worker_log or "Redis unavailable" in worker_log
    after = persistent.submit(png_bytes(48, 48, seed=90), styles, size=32, iterations=2)
    assert after.status_code == 202  # the web reconnected by itself
    assert persistent.wait_for(after.json()["id"], FINAL, timeout=60)["status"] == "succeeded"
