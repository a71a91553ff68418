"""The upload page in a real Chromium: checks before upload, the no-JavaScript path, recent jobs, layout."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import PHONE
from tests.e2e.helpers import (
    JOB_URL,
    no_horizontal_scroll,
    png_payload,
    screenshot,
    upload_page_without_javascript,
    wait_for_image,
)
from tests.support.images import png_bytes
from tests.support.stack import Stack


def test_a_non_image_file_is_refused_in_the_page_and_nothing_is_queued(page: Page, stack: Stack) -> None:
    queued_before, files_before = stack.queue_length(), stack.stored_files()
    page.goto("/")
    page.set_input_files(
        "#content-input", {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}
    )
    page.set_input_files("#style-input", png_payload("style.png"))

    expect(page.locator("#content-input-error")).to_contain_text("not an image")
    expect(page.locator("#content-input")).to_have_attribute("aria-invalid", "true")
    page.click("#submit-button")

    expect(page.locator("#submit-status")).to_contain_text("fix")
    expect(page.locator("#content-input")).to_be_focused()
    assert page.url.rstrip("/") == stack.base_url
    # Bytes that only pretend to be a PNG are caught too: the browser cannot decode them.
    page.set_input_files(
        "#style-input", {"name": "fake.png", "mimeType": "image/png", "buffer": b"not a png"}
    )
    expect(page.locator("#style-input-error")).to_contain_text("could not be read as an image")
    assert stack.queue_length() == queued_before
    assert stack.stored_files() == files_before


def test_without_javascript_the_server_shows_the_error_next_to_the_field(
    browser: Browser, stack: Stack
) -> None:
    queued_before, files_before = stack.queue_length(), stack.stored_files()
    with upload_page_without_javascript(browser, stack) as page:
        page.set_input_files(
            "#content-input", {"name": "fake.png", "mimeType": "image/png", "buffer": b"text"}
        )
        page.set_input_files("#style-input", png_payload("style.png"))
        with page.expect_navigation() as navigation:
            page.click("#submit-button")

        assert navigation.value.status == 415
        expect(page.locator("#form-alert")).to_contain_text("not started")
        expect(page.locator("#content-input-error")).not_to_be_empty()
        expect(page.locator("#content-input")).to_have_attribute("aria-invalid", "true")
    assert stack.queue_length() == queued_before
    assert stack.stored_files() == files_before


def test_recent_jobs_are_listed_with_thumbnails_and_fresh_status(page: Page, stack: Stack) -> None:
    finished = stack.submit(png_bytes(40, 32, seed=7), [png_bytes(32, 32, seed=8)], size=32, iterations=5)
    finished_id = finished.json()["id"]
    stack.wait_for(finished_id, {"succeeded"}, timeout=60)
    page.goto(f"/jobs/{finished_id}")  # this browser opened it, so it is one of its jobs
    expect(page.locator("#status-badge")).to_have_text("Done")

    # A job the browser last saw unfinished: the home page asks the server for its status.
    later = stack.submit(png_bytes(40, 32, seed=9), [png_bytes(32, 32, seed=10)], size=32, iterations=10)
    later_id = later.json()["id"]
    page.goto(f"/jobs/{later_id}")
    page.goto("/")
    stack.wait_for(later_id, {"succeeded"}, timeout=60)
    page.reload()

    items = page.locator("#recent-list li")
    expect(items).to_have_count(2)
    expect(page.locator("#recent-empty")).to_be_hidden()
    newest, older = items.nth(0), items.nth(1)
    expect(newest.locator("a")).to_have_attribute("href", f"/jobs/{later_id}")
    expect(older.locator("a")).to_have_attribute("href", f"/jobs/{finished_id}")
    expect(newest.locator(".badge")).to_have_text("Done")
    expect(older.locator(".badge")).to_have_text("Done")
    wait_for_image(page, f"#recent-list li[data-job-id='{finished_id}'] img")

    older.locator("a").click()
    page.wait_for_url(JOB_URL)
    assert page.url.endswith(finished_id)


def test_use_this_style_again_copies_the_style_into_a_new_form(page: Page, stack: Stack) -> None:
    response = stack.submit(png_bytes(40, 32, seed=11), [png_bytes(30, 20, seed=12)], size=32, iterations=3)
    job_id = response.json()["id"]
    stack.wait_for(job_id, {"succeeded"}, timeout=60)
    page.goto(f"/jobs/{job_id}")

    page.click("#reuse-link")

    # Fetching the style and filling the form can take seconds beside a loaded suite.
    expect(page.locator("#submit-status")).to_contain_text("copied", timeout=20_000)
    expect(page.locator("#content-input")).to_be_focused()
    assert page.eval_on_selector("#style-input", "input => input.files.length") == 1
    wait_for_image(page, "#field-style-input [data-thumb]")
    assert page.eval_on_selector("#field-style-input [data-thumb]", "img => img.naturalWidth") == 30
    assert page.input_value("#size") == "32" and page.input_value("#iterations") == "3"
    assert page.eval_on_selector("#content-input", "input => input.files.length") == 0


def test_pages_fit_a_phone_screen_and_work_with_the_keyboard(
    browser: Browser, stack: Stack, artifacts: Path
) -> None:
    response = stack.submit(png_bytes(40, 32, seed=13), [png_bytes(32, 32, seed=14)], size=32, iterations=3)
    job_id = response.json()["id"]
    stack.wait_for(job_id, {"succeeded"}, timeout=60)
    with browser.new_context(base_url=stack.base_url, viewport=PHONE) as context:
        page = context.new_page()
        page.goto("/")
        assert no_horizontal_scroll(page)
        screenshot(page, artifacts, "upload-page-phone")
        page.set_viewport_size({"width": 360, "height": 740})
        assert no_horizontal_scroll(page)
        page.goto(f"/jobs/{job_id}")
        wait_for_image(page, "#result-image")
        assert no_horizontal_scroll(page)
        screenshot(page, artifacts, "job-finished-phone")

        # Keyboard: Tab reaches the first drop zone, and the zone shows a focus ring.
        page.goto("/")
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "content-input":
                break
        assert page.evaluate("document.activeElement.id") == "content-input"
        outline = page.eval_on_selector(
            "#field-content-input .dropzone", "zone => getComputedStyle(zone).outlineStyle"
        )
        assert outline == "solid"
