"""Large prints through the web (issue 12), in-process on a real Redis: the Print preset, the size
limit, the large-job queue, the note on an upscaled style image, progress that counts work, and the
job page's result view. Tiny images only: what is large is the asked-for size, not the uploads.

A real worker making previews and the JPEG download: tests/app/test_print_results.py.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator

import pytest

from core.jobs import JobStore
from tests.support.images import png_bytes
from tests.support.inprocess import InProcessWeb

GPU_BOX = {"ATELIER_MAX_SIZE": "4096", "ATELIER_LARGE_JOB_QUEUE": "gpu", "ATELIER_LARGE_JOB_MIN_SIZE": "1024"}
CONTENT = png_bytes(64, 48, seed=60)
STYLE = png_bytes(48, 48, seed=61)


@pytest.fixture
def gpu_web(web_factory: Callable[..., InProcessWeb]) -> InProcessWeb:
    """A web configured as for GPU workers: prints allowed, large jobs on their own queue."""
    return web_factory("gpu-box", GPU_BOX)


@contextlib.contextmanager
def running_job(web: InProcessWeb, **options: object) -> Iterator[tuple[str, JobStore]]:
    """A job of 400 steps that worker "w1" has claimed (no worker process: the test plays it), and
    the job store; cancelled afterwards."""
    job_id = web.submit(CONTENT, [STYLE], size=64, iterations=400, **options).json()["id"]
    with web.redis() as redis:
        store = JobStore(redis, ttl_seconds=600)
        assert store.claim(job_id, "w1", lease_seconds=30, max_attempts=3).outcome == "started"
        try:
            yield job_id, store
        finally:
            store.request_cancel(job_id)
            store.finish(job_id, "cancelled")


def queue_lengths(web: InProcessWeb) -> tuple[int, int]:
    """Messages waiting on (the default queue, the large-job queue "gpu")."""
    with web.redis() as redis:
        return int(redis.llen(web.queue_name)), int(redis.llen("gpu"))


def test_the_print_preset_is_2048_px_coarse_to_fine_on_the_large_job_queue(gpu_web: InProcessWeb) -> None:
    before = queue_lengths(gpu_web)
    response = gpu_web.submit(CONTENT, [STYLE], preset="print")
    assert response.status_code == 202, response.text
    options = gpu_web.status(response.json()["id"])["options"]

    assert options["preset"] == "print" and options["size"] == 2048 and options["iterations"] == 400
    assert options["ladder_start"] == 512 and options["scales"] == [1.0]
    assert queue_lengths(gpu_web) == (before[0], before[1] + 1)  # the GPU queue, not the default one


def test_options_sent_with_the_print_preset_win_and_small_jobs_stay_on_the_default_queue(
    gpu_web: InProcessWeb,
) -> None:
    before = queue_lengths(gpu_web)
    response = gpu_web.submit(CONTENT, [STYLE], preset="print", size=512, scales="0.5,1")
    assert response.status_code == 202, response.text
    options = gpu_web.status(response.json()["id"])["options"]

    # scales chosen: the preset's ladder (the other way to go coarse to fine) is not filled in.
    assert (options["size"], options["scales"], options["ladder_start"]) == (512, [0.5, 1.0], 0)
    assert queue_lengths(gpu_web) == (before[0] + 1, before[1])


def test_the_print_preset_is_capped_to_a_cpu_box_limit(web: InProcessWeb) -> None:
    response = web.submit(CONTENT, [STYLE], preset="print")
    assert response.status_code == 202, response.text
    assert web.status(response.json()["id"])["options"]["size"] == 1024  # ATELIER_MAX_SIZE's default


def test_a_size_beyond_the_limit_is_refused_naming_it(gpu_web: InProcessWeb) -> None:
    before, files = queue_lengths(gpu_web), gpu_web.stored_files()
    response = gpu_web.submit(CONTENT, [STYLE], size=4097)

    assert response.status_code == 422
    assert response.json()["detail"] == "size: must be at most 4096 pixels (ATELIER_MAX_SIZE)"
    assert queue_lengths(gpu_web) == before and gpu_web.stored_files() == files
    assert gpu_web.submit(CONTENT, [STYLE], size=4096).status_code == 202  # the limit itself is allowed


def test_a_style_image_much_smaller_than_the_picture_gets_a_note(web: InProcessWeb) -> None:
    # A 256 px picture from a 32 px style image: the engine upscales it 8x (the 160 px one 1.6x: no note).
    small = web.submit(
        png_bytes(256, 192, seed=62), [png_bytes(160, 160), png_bytes(32, 24, seed=63)], size=256
    )
    assert small.status_code == 202, small.text
    job_id = small.json()["id"]

    assert web.status(job_id)["notes"] == [
        "Style image 2 is 32x24 pixels; for this 256 px picture it is upscaled 8.0x (to 256 px on its "
        "longest side), so its brush strokes may look soft: a larger style image keeps them crisp."
    ]
    with web.client as client:
        page = client.get(f"/jobs/{job_id}").text
    assert 'id="notes-section"' in page and "Style image 2 is 32x24 pixels" in page


def test_progress_and_time_left_count_work_not_steps(web: InProcessWeb) -> None:
    with running_job(web, scales="0.25,0.5,1") as (job_id, store):
        # Half the steps are the cheap coarse ones: 10% of the work, done in 12 s.
        store.set_progress(job_id, 266, 400, {"total": 1.0}, 12.0, work=0.1)
        status = web.status(job_id)
        with web.client as client:
            page = client.get(f"/jobs/{job_id}").text

    assert status["step"] == 266 and status["progress"] == 0.1
    assert status["eta_seconds"] == 108.0  # 12 s per 10% of the work, 90% left; steps would say 6 s
    bar = re.search(r'<progress id="progress-bar" max="(\d+)" value="([\d.]+)"', page)
    assert bar and (bar.group(1), float(bar.group(2))) == ("400", 40.0)
    assert '<span id="progress-percent">10%</span>' in page


def test_a_resumed_jobs_time_left_counts_only_the_pace_since_it_resumed(web: InProcessWeb) -> None:
    with running_job(web) as (job_id, store):
        # A worker resumed it from a checkpoint at half the work; this run has done 10% more in 20 s.
        store.set_progress(job_id, 240, 400, {"total": 1.0}, 20.0, work=0.6, work_before=0.5)
        status = web.status(job_id)

    assert status["progress"] == 0.6
    assert status["eta_seconds"] == 80.0  # 20 s per 10%, 40% left; from 60% in 20 s it would say 13 s


def test_the_upload_page_offers_print_at_the_size_the_server_allows(
    gpu_web: InProcessWeb, web: InProcessWeb
) -> None:
    with gpu_web.client as client:
        gpu_page = client.get("/").text
    with web.client as client:
        cpu_page = client.get("/").text
    assert re.search(
        r'value="print" data-size="2048"\s+data-iterations="400" data-ladder-start="512"', gpu_page
    )
    assert re.search(r'value="print" data-size="1024"', cpu_page)  # capped to ATELIER_MAX_SIZE


def test_a_handed_back_job_says_it_waits_for_the_next_worker(web: InProcessWeb) -> None:
    with running_job(web) as (job_id, store):
        running = web.status(job_id)
        assert store.release(job_id, "w1")  # w1 got SIGTERM and handed the job back
        waiting = web.status(job_id)
        with web.client as client:
            page = client.get(f"/jobs/{job_id}").text
        assert store.claim(job_id, "w2", lease_seconds=30, max_attempts=3).outcome == "resumed"
        resumed = web.status(job_id)

    assert (running["handed_back"], waiting["handed_back"], resumed["handed_back"]) == (False, True, False)
    assert waiting["status"] == "running" and (waiting["preemptions"], waiting["attempts"]) == (1, 1)
    note = re.search(r'<p class="queue-note" id="queue-note"( hidden)?>\s*(.*?)\s*</p>', page, re.S)
    assert note and note.group(1) is None
    assert (
        note.group(2) == "Its worker was stopped: the next free worker resumes it from its last checkpoint."
    )


@pytest.mark.parametrize(
    ("options", "detail"),
    [
        ({"ladder_start": 16}, "ladder_start: must be 0 (off) or at least 32 px"),
        (
            {"ladder_start": 256, "scales": "0.5,1"},
            "ladder_start: cannot be set with scales (two ways to go coarse to fine): set one of them",
        ),
    ],
)
def test_a_bad_ladder_is_refused_naming_it_and_nothing_is_queued(
    web: InProcessWeb, options: dict[str, object], detail: str
) -> None:
    before, files = queue_lengths(web), web.stored_files()
    response = web.submit(CONTENT, [STYLE], **options)
    assert response.status_code == 422
    assert response.json()["detail"] == detail
    assert queue_lengths(web) == before and web.stored_files() == files
