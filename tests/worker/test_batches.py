"""Batches through real workers: a 2×2 batch runs its 4 jobs and its ZIP holds the 4 results; its
event stream ends when they have; one client's 16-job batch does not make another client's single
job wait for all 16 (one worker); and what a 16-job submission costs against 16 single POSTs."""

from __future__ import annotations

import io
import logging
import time
import zipfile
from datetime import datetime

import httpx

from tests.support.images import image_size, png_bytes
from tests.support.sse import read_events
from tests.support.stack import Stack

logger = logging.getLogger(__name__)
FINISHED = {"succeeded", "failed", "cancelled"}


def batch_files(contents: int, styles: int) -> list[tuple[str, tuple[str, bytes, str]]]:
    files = [
        ("content", (f"photo{i}.png", png_bytes(40, 30, seed=80 + i), "image/png")) for i in range(contents)
    ]
    return files + [
        ("style", (f"paint{i}.png", png_bytes(32, 32, seed=90 + i), "image/png")) for i in range(styles)
    ]


def wait_for_batch(stack: Stack, batch_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    with stack.client as client:  # one client for the polls, not one (and its TLS set-up) each
        while True:
            status = client.get(f"/api/batches/{batch_id}").json()
            if status["status"] == "finished":
                return status
            assert time.monotonic() < deadline, f"batch still {status['status']}: {status['totals']}"
            for process in stack.processes.values():
                process.check_alive()
            time.sleep(0.2)


def started(stack: Stack, job_id: str) -> float:
    return datetime.fromisoformat(stack.status(job_id)["started_at"]).timestamp()


def test_a_2x2_batch_runs_four_jobs_and_its_zip_holds_the_four_results(stack: Stack) -> None:
    with stack.client as client:
        response = client.post(
            "/api/batches", files=batch_files(2, 2), data={"size": "32", "iterations": "6"}
        )
        assert response.status_code == 202, response.text
        created = response.json()
        with client.stream("GET", f"/api/batches/{created['id']}/events", timeout=120) as stream:
            events = read_events(stream)  # one stream ends by itself within ATELIER_EVENT_STREAM_SECONDS

    final = wait_for_batch(stack, created["id"])
    assert final["totals"]["succeeded"] == 4 and final["progress"] == 1.0
    assert all(job["result_url"] for job in final["jobs"])
    assert events and all(name in ("message", "end") for name, _ in events)
    with stack.client as client:
        download = client.get(final["download_url"])
    assert download.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        names = sorted(archive.namelist())
        sizes = {name: image_size(archive.read(name)) for name in names}
    assert names == ["photo0__paint0.png", "photo0__paint1.png", "photo1__paint0.png", "photo1__paint1.png"]
    assert set(sizes.values()) == {(32, 24)}
    with stack.client as client:
        page = client.get(final["page_url"])
        job_page = client.get(final["jobs"][0]["page_url"])
    assert page.status_code == 200 and page.text.count('class="sheet-cell"') == 4
    assert stack.status(final["jobs"][0]["id"])["batch_url"] == created["status_url"]
    assert f'href="{created["page_url"]}">part of a batch' in job_page.text  # each job links to its batch


def test_a_single_job_of_another_client_waits_for_two_batch_jobs_at_most(stack: Stack) -> None:
    stack.wait_idle()
    with stack.client as client:
        batch = client.post(
            "/api/batches", files=batch_files(4, 4), data={"size": "32", "iterations": "8"}
        ).json()
    with httpx.Client(
        base_url=stack.base_url, timeout=30, headers={"X-Forwarded-For": "203.0.113.7"}
    ) as other:
        single = other.post(
            "/api/jobs",
            files=[("content", ("c.png", png_bytes(40, 30, seed=99), "image/png")),
                   ("style", ("s.png", png_bytes(32, 32, seed=98), "image/png"))],
            data={"size": "32", "iterations": "8"},
        ).json()  # fmt: skip

    stack.wait_for(single["id"], FINISHED, timeout=120)
    single_start = started(stack, single["id"])
    batch_starts = []
    for job_id in batch["jobs"]:
        status = stack.status(job_id)
        if status["started_at"]:
            batch_starts.append(datetime.fromisoformat(status["started_at"]).timestamp())
    before = sum(1 for start in batch_starts if start < single_start)
    logger.warning("fairness: %d of the batch's 16 jobs started before the other client's job", before)
    assert before <= 2, f"{before} batch jobs ran before the single job"
    final = wait_for_batch(stack, batch["id"])
    assert final["totals"]["succeeded"] == 16  # and the batch still ran to the end, in its order
    starts = [started(stack, job_id) for job_id in batch["jobs"]]
    assert starts == sorted(starts)


def test_a_16_job_batch_costs_less_to_submit_than_16_single_posts(web_process: Stack) -> None:
    files = batch_files(4, 4)
    data = {"size": "32", "iterations": "3"}
    with web_process.client as client:
        client.post("/api/batches", files=batch_files(1, 1), data=data)  # warm: imports, connections
        begun = time.perf_counter()
        batch = client.post("/api/batches", files=files, data=data)
        batch_seconds = time.perf_counter() - begun
        begun = time.perf_counter()
        singles = [
            client.post("/api/jobs", files=[files[content], files[4 + style]], data=data)
            for content in range(4)
            for style in range(4)
        ]
        singles_seconds = time.perf_counter() - begun

    assert batch.status_code == 202 and all(single.status_code == 202 for single in singles)
    logger.warning(
        "submission: one 16-job batch %.3f s, 16 single POSTs %.3f s (%.1fx)",
        batch_seconds, singles_seconds, singles_seconds / batch_seconds,
    )  # fmt: skip
    assert batch_seconds < singles_seconds
    for job_id in web_process.busy_job_ids():
        web_process.cancel_in_store(job_id)
