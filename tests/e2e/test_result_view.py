"""The finished picture in a real Chromium (issue 12): fitted to the page, View at 100% shows it pixel for
pixel and back, and the JPEG download is offered; under the app's strict CSP (no inline script)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.helpers import screenshot, wait_for_image, wait_for_status
from tests.support.images import png_bytes
from tests.support.stack import Stack


def rendered_width(page: Page) -> float:
    return page.eval_on_selector("#result-image", "img => img.getBoundingClientRect().width")


def test_the_result_fits_the_page_and_can_be_seen_at_100_percent(
    page: Page, stack: Stack, artifacts: Path
) -> None:
    response = stack.submit(png_bytes(64, 48, seed=66), [png_bytes(48, 48, seed=67)], size=64, iterations=3)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    stack.wait_for(job_id, {"succeeded", "failed"})

    page.goto(f"/jobs/{job_id}")
    assert wait_for_status(page, {"succeeded", "failed"}) == "succeeded"
    wait_for_image(page, "#result-image")
    button = page.locator("#actual-size-button")
    expect(button).to_be_visible()
    expect(button).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#result-caption")).to_have_text("Fitted to the page (64 × 48 px).")
    assert rendered_width(page) > 300  # a 64 px picture fills the frame's width

    button.click()
    expect(button).to_have_attribute("aria-pressed", "true")
    expect(button).to_have_text("Fit to page")
    expect(page.locator("#result-caption")).to_contain_text("At 100% (64 × 48 px)")
    assert rendered_width(page) == 64
    screenshot(page, artifacts, "result-at-100-percent")

    button.click()
    expect(button).to_have_attribute("aria-pressed", "false")
    assert rendered_width(page) > 300

    jpeg = page.locator("#download-jpeg-link")
    expect(jpeg).to_have_attribute("href", f"/api/jobs/{job_id}/result?format=jpeg")
    answer = page.request.get(jpeg.get_attribute("href") or "")
    assert answer.ok and answer.headers["content-type"] == "image/jpeg"
