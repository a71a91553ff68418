"""Small helpers shared by the browser tests: generated uploads, the form, reading the job page."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, FilePayload, Page

from tests.support.images import png_bytes
from tests.support.stack import Stack

JOB_URL = re.compile(r"/jobs/([0-9a-f]{32})$")
FINISHED = {"succeeded", "failed", "cancelled"}


@contextlib.contextmanager
def upload_page_without_javascript(browser: Browser, stack: Stack) -> Iterator[Page]:
    """The upload page in a browser context of its own with JavaScript off (the plain form)."""
    with browser.new_context(base_url=stack.base_url, java_script_enabled=False) as context:
        page = context.new_page()
        page.goto("/")
        yield page


def png_payload(name: str, width: int = 64, height: int = 48, seed: int = 0) -> FilePayload:
    return {"name": name, "mimeType": "image/png", "buffer": png_bytes(width, height, seed=seed)}


def fill_form(page: Page, *, size: int, iterations: int, preview_every: int | None = None) -> None:
    """Choose a generated content and style image through the real file inputs and set the options."""
    page.set_input_files("#content-input", png_payload("content.png", 64, 48, seed=1))
    page.set_input_files("#style-input", png_payload("style.png", 48, 48, seed=2))
    set_options(page, size=size, iterations=iterations, preview_every=preview_every)


def set_options(page: Page, *, size: int, iterations: int, preview_every: int | None = None) -> None:
    """Open the Advanced panel and set the size, the steps and (when given) the preview interval."""
    page.click("#advanced summary")
    page.fill("#size", str(size))
    page.fill("#iterations", str(iterations))
    if preview_every is not None:
        page.fill("#preview_every", str(preview_every))


def submit_form(page: Page) -> str:
    """Click "Start painting" and return the new job's id from the job page's URL."""
    page.click("#submit-button")
    page.wait_for_url(JOB_URL)
    match = JOB_URL.search(page.url)
    assert match, page.url
    return match.group(1)


def page_status(page: Page) -> str:
    return page.eval_on_selector("#job", "element => element.dataset.status")


def bar_value(page: Page) -> float:
    return page.eval_on_selector("#progress-bar", "bar => bar.value")


def image_loaded(page: Page, selector: str) -> bool:
    """The image is shown and its pixels arrived (naturalWidth > 0)."""
    return page.eval_on_selector(
        selector, "img => !img.closest('[hidden]') && img.complete && img.naturalWidth > 0"
    )


def wait_for_js(page: Page, expression: str, arg: Any = None, timeout_s: float = 20, what: str = "") -> None:
    """Poll a JavaScript function (as a string) until it returns something truthy.

    Not page.wait_for_function: that compiles its predicate in the page with eval, which the app's
    Content-Security-Policy (script-src 'self') forbids. page.evaluate goes through the DevTools
    protocol, which a CSP does not govern.
    """
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression, arg):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what or expression} still false after {timeout_s} s")
        page.wait_for_timeout(50)


def wait_for_image(page: Page, selector: str, timeout_s: float = 20) -> None:
    wait_for_js(
        page,
        "selector => { const img = document.querySelector(selector);"
        " return img && !img.closest('[hidden]') && img.complete && img.naturalWidth > 0; }",
        selector,
        timeout_s,
        f"image {selector} loaded",
    )


def wait_for_status(page: Page, statuses: set[str], timeout_s: float = 60) -> str:
    wait_for_js(
        page,
        "statuses => statuses.includes(document.getElementById('job').dataset.status)",
        sorted(statuses),
        timeout_s,
        f"job status in {sorted(statuses)}",
    )
    return page_status(page)


def wait_for_bar(page: Page, above: float, timeout_s: float = 20) -> None:
    """Wait until the progress bar's value is above `above`."""
    wait_for_js(
        page,
        "above => document.getElementById('progress-bar').value > above",
        above,
        timeout_s,
        f"progress bar above {above}",
    )


def screenshot(page: Page, directory: Path, name: str) -> Path:
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def no_horizontal_scroll(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def wait_until(page: Page, check: Any, timeout_s: float, what: str) -> None:
    """Wait for check() to be true, letting Playwright deliver the page's events meanwhile
    (the sync API only dispatches them, e.g. page.on("request"), inside its own calls)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout_s} s")
        page.wait_for_timeout(50)


def cancel_unless_finished(stack: Stack, job_id: str) -> None:
    """Cleanup after a test with a long job: never leave the shared worker busy for the next test.

    Cancels in the job store, as an operator would: the test process may not hold the job's token
    (a job the browser submitted has its token in the browser's cookies only).
    """
    if stack.status(job_id)["status"] not in FINISHED:
        stack.cancel_in_store(job_id)
        stack.wait_for(job_id, FINISHED, timeout=30)
