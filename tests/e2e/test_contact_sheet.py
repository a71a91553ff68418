"""A batch's page in a real Chromium: the contact sheet (contents by styles) fills in as its jobs
finish, live over the batch's event stream, and offers the ZIP of the results; the home page's recent
list shows the batch."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page

from tests.e2e.helpers import screenshot, wait_for_js
from tests.support.images import png_bytes
from tests.support.stack import Stack

LOADED_RESULTS = """() => [...document.querySelectorAll('.sheet-cell[data-status="succeeded"] img')]
  .filter((img) => !img.hidden && img.complete && img.naturalWidth > 0).length"""


def test_the_contact_sheet_fills_in_as_jobs_finish(page: Page, stack: Stack, artifacts: Path) -> None:
    files = [("content", (f"photo{i}.png", png_bytes(48, 36, seed=120 + i), "image/png")) for i in range(2)]
    files += [("style", (f"paint{i}.png", png_bytes(32, 32, seed=130 + i), "image/png")) for i in range(2)]
    with stack.client as client:
        created = client.post("/api/batches", files=files, data={"size": "48", "iterations": "40"}).json()

    page.goto(created["page_url"])
    assert page.locator("#contact-sheet tbody tr").count() == 2
    assert page.locator("#contact-sheet thead th").all_text_contents() == ["paint0", "paint1"]
    wait_for_js(page, f"() => ({LOADED_RESULTS})() >= 1", timeout_s=90, what="a first result")
    first_seen = page.evaluate(LOADED_RESULTS)
    wait_for_js(page, "() => document.getElementById('batch').dataset.status === 'finished'", timeout_s=120)
    wait_for_js(page, f"() => ({LOADED_RESULTS})() === 4", what="all four results shown")

    assert first_seen < 4  # it filled in as the jobs finished, not all at once at the end
    assert page.text_content("#batch-totals") == "4 done, 0 running, 0 queued"
    assert page.eval_on_selector("#batch-progress", "bar => bar.value") == 1
    assert page.get_attribute("#download-zip", "href") == created["download_url"]
    cell = page.locator(".sheet-cell").first
    assert cell.get_attribute("href") == f"/jobs/{created['jobs'][0]}"
    screenshot(page, artifacts, "batch-contact-sheet")

    page.goto("/")  # the recent list shows the batch, linking to its contact sheet
    item = page.locator(f"#recent-list li[data-job-id='{created['id']}']")
    assert item.locator("a").get_attribute("href") == created["page_url"]
    assert "Batch of 4" in (item.text_content() or "")
