"""A job in a real Chromium: upload through the form, watch it live, download the result; cancel; polling."""

from __future__ import annotations

import io
import time
from pathlib import Path

from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.helpers import (
    FINISHED,
    bar_value,
    cancel_unless_finished,
    fill_form,
    image_loaded,
    page_status,
    screenshot,
    submit_form,
    wait_for_bar,
    wait_for_image,
    wait_for_status,
    wait_until,
)
from tests.support.images import png_bytes
from tests.support.stack import Stack


def test_upload_watch_progress_and_download(
    page: Page, browser: Browser, stack: Stack, artifacts: Path
) -> None:
    page.goto("/")
    fill_form(page, size=48, iterations=60, preview_every=5)
    expect(page.locator("#field-content-input [data-thumb]")).to_be_visible()
    screenshot(page, artifacts, "upload-page")

    job_id = submit_form(page)

    bar_values: list[float] = []
    preview_seen = False
    live_within_a_second = False
    second_browser_checked = False
    deadline = time.monotonic() + 90
    while (status := page_status(page)) not in FINISHED:
        assert time.monotonic() < deadline, f"job still {status} after 90 s"
        value = bar_value(page)
        if not bar_values or value != bar_values[-1]:
            bar_values.append(value)
        if status == "running" and not preview_seen and image_loaded(page, "#preview-image"):
            preview_seen = True
            screenshot(page, artifacts, "job-running")
        if status == "running" and not live_within_a_second:
            # The worker's progress as the API reports it now must reach the bar within a second.
            api_step = stack.status(job_id)["step"]
            wait_for_bar(page, api_step - 1, timeout_s=1)
            live_within_a_second = True
        if status == "running" and not second_browser_checked and bar_values[-1] > 0:
            # Another browser opening the URL sees the same live state (it comes from the server).
            with browser.new_context(base_url=stack.base_url) as other:
                other_page = other.new_page()
                other_page.goto(f"/jobs/{job_id}")
                assert page_status(other_page) in {"running", "succeeded"}
                assert bar_value(other_page) > 0
            second_browser_checked = True
        time.sleep(0.05)

    assert status == "succeeded", page.locator("#job-message").inner_text()
    rises = sum(1 for before, after in zip(bar_values, bar_values[1:], strict=False) if after > before)
    assert rises >= 2, f"the progress bar rose {rises} time(s): {bar_values}"
    assert preview_seen, "no live preview image appeared while the job ran"
    assert live_within_a_second and second_browser_checked

    expect(page.locator("#status-badge")).to_have_text("Done")
    expect(page.locator("#progress-percent")).to_have_text("100%")
    wait_for_image(page, "#result-image")
    wait_for_image(page, "#compare-before")
    expect(page.locator("#cancel-form")).to_be_hidden()
    expect(page.locator("#loss-chart polyline")).to_have_count(1)
    screenshot(page, artifacts, "job-finished")

    with page.expect_download() as download_info:
        page.click("#download-link")
    download = download_info.value
    assert download.suggested_filename.endswith(".png")
    data = Path(download.path()).read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert image.size == (48, 36)  # 64x48 content scaled to a longest side of 48

    # A reload shows the same finished state.
    page.reload()
    expect(page.locator("#status-badge")).to_have_text("Done")
    wait_for_image(page, "#result-image")


def test_a_long_job_stays_live_across_stream_reconnects_and_can_be_cancelled_while_another_waits(
    page: Page, browser: Browser, stack: Stack
) -> None:
    """One long job serves both claims (the worker is busy only once): it stays live across the
    stream's reconnects while a second job, submitted meanwhile, shows its place in the queue."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto("/")
    fill_form(page, size=48, iterations=2000)  # minutes of work: only a cancel ends it quickly
    job_id = submit_form(page)
    try:
        wait_for_bar(page, 0, timeout_s=60)
        expect(page.locator("#status-badge")).to_have_text("Running")
        # The stream's reconnect (ATELIER_EVENT_STREAM_SECONDS) comes while the second job is looked at.
        a_queued_job_shows_its_place_and_its_submitter_can_cancel_it(page.context.new_page(), browser, stack)
        watch_live_and_cancel(page, stack, job_id, requested)
    finally:
        cancel_unless_finished(stack, job_id)


def watch_live_and_cancel(page: Page, stack: Stack, job_id: str, requested: list[str]) -> None:
    # The server ends each event stream after ATELIER_EVENT_STREAM_SECONDS; the page reconnects and
    # stays live.
    wait_until(
        page,
        lambda: sum("/events" in url for url in requested) >= 2,
        float(stack.env["ATELIER_EVENT_STREAM_SECONDS"]) + 10,
        "an SSE reconnect",
    )
    value = bar_value(page)
    wait_for_bar(page, value)
    assert not any(url.endswith(f"/api/jobs/{job_id}") for url in requested), "fell back to polling"

    page.click("#cancel-button")

    expect(page.locator("#status-badge")).to_have_text("Cancelled", timeout=15_000)
    expect(page.locator("#job-message")).to_contain_text("cancelled")
    expect(page.locator("#cancel-form")).to_be_hidden()
    status = stack.status(job_id)
    assert status["status"] == "cancelled"
    assert 0 < status["step"] < 2000
    page.reload()
    expect(page.locator("#status-badge")).to_have_text("Cancelled")


def test_job_page_polls_when_event_source_is_unavailable(context: BrowserContext, stack: Stack) -> None:
    context.add_init_script("delete window.EventSource;")
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    response = stack.submit(png_bytes(64, 48, seed=5), [png_bytes(32, 32, seed=6)], size=32, iterations=30)
    job_id = response.json()["id"]

    page.goto(f"/jobs/{job_id}")

    assert wait_for_status(page, FINISHED, timeout_s=60) == "succeeded"
    assert bar_value(page) == page.eval_on_selector("#progress-bar", "bar => bar.max")
    wait_for_image(page, "#result-image")
    assert any(url.endswith(f"/api/jobs/{job_id}") for url in requested), "the page never polled the status"
    assert not any("/events" in url for url in requested)


def a_queued_job_shows_its_place_and_its_submitter_can_cancel_it(
    page: Page, browser: Browser, stack: Stack
) -> None:
    """With the worker busy, a job submitted from the form waits "next in line"; only its submitter
    (this browser, which holds its token) can cancel it, and it never starts."""
    page.goto("/")
    fill_form(page, size=32, iterations=5)
    waiting_id = submit_form(page)
    try:
        expect(page.locator("#status-badge")).to_have_text("Queued")
        expect(page.locator("#queue-note")).to_contain_text("Next in line")
        assert bar_value(page) == 0
        # Only the submitting browser holds the job's token: another one gets no Cancel button.
        with browser.new_context(base_url=stack.base_url) as other:
            other_page = other.new_page()
            other_page.goto(f"/jobs/{waiting_id}")
            expect(other_page.locator("#status-badge")).to_have_text("Queued")
            expect(other_page.locator("#cancel-button")).to_be_hidden()

        page.click("#cancel-button")

        expect(page.locator("#status-badge")).to_have_text("Cancelled")
        expect(page.locator("#queue-note")).to_be_hidden()
        expect(page.locator("#job-message")).to_contain_text("cancelled before it started")
        assert stack.status(waiting_id)["started_at"] is None
    finally:
        page.close()
        cancel_unless_finished(stack, waiting_id)


def test_a_failed_job_says_why(browser: Browser, offline_stack: Stack, artifacts: Path) -> None:
    offline = offline_stack  # no weights file: its jobs fail
    response = offline.submit(png_bytes(48, 48, seed=44), [png_bytes(48, 48, seed=45)], size=32, iterations=2)
    job_id = response.json()["id"]

    with browser.new_context(base_url=offline.base_url) as context:
        page = context.new_page()
        page.goto(f"/jobs/{job_id}")
        assert wait_for_status(page, FINISHED, timeout_s=60) == "failed"
        expect(page.locator("#status-badge")).to_have_text("Failed")
        expect(page.locator("#job-message")).to_be_visible()
        expect(page.locator("#job-message")).to_contain_text("weights")
        expect(page.locator("#result-section")).to_be_hidden()
        expect(page.locator("#cancel-form")).to_be_hidden()
        screenshot(page, artifacts, "job-failed")
