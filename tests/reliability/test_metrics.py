"""GET /metrics on real processes: Prometheus text that prometheus_client's parser reads, numbers that
move when jobs run, the same numbers from every uvicorn worker process, and no metrics for the public.
On the session's default stack (its one solo worker): every stack has a metrics token (TEST_ENV)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.images import png_bytes
from tests.support.stack import METRICS_TOKEN, TLS, VENV_BIN, Stack, free_port, spawn

AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def _scrape(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, labels): value} of one scrape."""
    response = httpx.get(f"{base_url}/metrics", headers=AUTH, timeout=10, verify=TLS)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


@contextlib.contextmanager
def _another_web(stack: Stack, name: str, env: dict[str, str], processes: int) -> Iterator[str]:
    """Another uvicorn (with `processes` worker processes) on the stack's Redis; yields its URL."""
    port = free_port()
    args = [str(VENV_BIN / "uvicorn"), "app.main:app", "--host", "127.0.0.1", "--port", str(port)]
    web = spawn(name, [*args, "--workers", str(processes)], env, stack.processes["web"].log_path.parent)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            web.check_alive()
            try:
                if httpx.get(f"{base_url}/healthz", timeout=2, verify=TLS).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, web.tail()
            time.sleep(0.2)
        yield base_url
    finally:
        web.stop()


@pytest.fixture
def two_process_web(stack: Stack) -> Iterator[str]:
    with _another_web(stack, "web-2-processes", stack.env, processes=2) as base_url:
        yield base_url


def test_metrics_parse_and_move_when_jobs_run(stack: Stack) -> None:
    stack.wait_idle()
    before = _scrape(stack.base_url)
    job_ids = [
        stack.submit(
            png_bytes(40, 40, seed=s), [png_bytes(40, 40, seed=s + 1)], size=size, iterations=3
        ).json()["id"]
        for s, size in ((180, 32), (182, 200))
    ]
    cancelled = stack.submit(
        png_bytes(40, 40, seed=184), [png_bytes(40, 40, seed=185)], size=32, iterations=2000
    )
    with stack.client as client:
        client.post(f"/api/jobs/{cancelled.json()['id']}/cancel")
    for job_id in job_ids:
        stack.wait_for(job_id, {"succeeded"}, timeout=120)
    stack.wait_for(cancelled.json()["id"], {"cancelled"}, timeout=60)
    after = _scrape(stack.base_url)

    def moved(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return after[(name, labels)] - before.get((name, labels), 0.0)

    assert moved("atelier_jobs_submitted_total") == 3
    assert moved("atelier_jobs_succeeded_total") == 2
    assert moved("atelier_jobs_cancelled_total") == 1
    # Every job that started was waited for and ended (the cancelled one may not have started).
    assert moved("atelier_job_duration_seconds_count") == moved("atelier_queue_wait_seconds_count") >= 2
    assert moved("atelier_step_seconds_count", (("size", "128"),)) == 1
    assert moved("atelier_step_seconds_count", (("size", "256"),)) == 1
    assert after[("atelier_step_seconds_sum", (("size", "256"),))] > 0
    assert after[("atelier_step_seconds_bucket", (("le", "+Inf"), ("size", "256")))] >= 1
    assert after[("atelier_queue_depth", (("queue", stack.queue_name),))] == 0
    assert after[("atelier_jobs", (("status", "queued"),))] == 0
    assert after[("atelier_jobs", (("status", "running"),))] == 0
    assert after[("atelier_workers_live", ())] >= len(_live_workers(stack))  # the killed go in 30 s
    # One style, one rung per succeeded job: cached by the worker that ran it, or computed.
    targets = moved("atelier_style_targets_cached_total") + moved("atelier_style_targets_computed_total")
    assert targets >= 2


def _live_workers(stack: Stack) -> list[str]:
    return [name for name, process in stack.processes.items() if name.startswith("worker")]


def test_queue_depth_and_running_jobs_are_counted_while_workers_are_busy(stack: Stack) -> None:
    stack.wait_idle()
    live = len(_live_workers(stack))
    ids = [
        stack.submit(
            png_bytes(40, 40, seed=s), [png_bytes(40, 40, seed=s + 1)], size=32, iterations=2000
        ).json()["id"]
        for s in range(190, 190 + 2 * (live + 1), 2)
    ]
    try:
        deadline = time.monotonic() + 60
        while (metrics := _scrape(stack.base_url))[("atelier_jobs", (("status", "running"),))] < live:
            assert time.monotonic() < deadline, metrics
            time.sleep(0.2)
        assert metrics[("atelier_queue_depth", (("queue", stack.queue_name),))] == 1
        assert metrics[("atelier_jobs", (("status", "queued"),))] == 1
    finally:
        with stack.client as client:
            for job_id in ids:
                client.post(f"/api/jobs/{job_id}/cancel")
        stack.wait_idle()


def test_every_web_process_serves_the_same_numbers(stack: Stack, two_process_web: str) -> None:
    scrapes = [_scrape(two_process_web) for _ in range(8)]  # spread over both uvicorn processes
    single = _scrape(stack.base_url)

    for scrape in scrapes:
        assert scrape[("atelier_jobs_submitted_total", ())] == single[("atelier_jobs_submitted_total", ())]
        assert (
            scrape[("atelier_job_duration_seconds_count", ())]
            == single[("atelier_job_duration_seconds_count", ())]
        )


def test_metrics_are_not_public(stack: Stack) -> None:
    assert httpx.get(f"{stack.base_url}/metrics", timeout=10, verify=TLS).status_code == 401
    wrong = httpx.get(
        f"{stack.base_url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10, verify=TLS
    )
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    # Without ATELIER_METRICS_TOKEN (the default) there is no endpoint at all.
    env = {name: value for name, value in stack.env.items() if name != "ATELIER_METRICS_TOKEN"}
    with _another_web(stack, "web-without-token", env, processes=1) as base_url:
        assert httpx.get(f"{base_url}/metrics", headers=AUTH, timeout=10, verify=TLS).status_code == 404
