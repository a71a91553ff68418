"""The server's own Content-Security-Policy in a real Chromium: the upload and job pages work under it
with no violation reported, and the job-token cookie lets the page cancel but is hidden from scripts.

The browser runs in a thread of its own: Playwright's sync API refuses to start while another
sync instance (the e2e tests' session browser) is open in this thread.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from playwright.sync_api import Page, Response, expect, sync_playwright

from app.security import CONTENT_SECURITY_POLICY
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, DESKTOP
from tests.e2e.helpers import fill_form, submit_form, wait_for_image, wait_for_status
from tests.support.stack import Stack

REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  const where = `${event.sourceFile}:${event.lineNumber}`;
  window.reportCspViolation(`${event.violatedDirective} ${event.blockedURI} ${where}`);
});
"""


def browse_under_the_servers_policy(stack: Stack) -> dict[str, object]:
    """Run a short job and cancel a long one through the pages; what the browser saw."""
    violations: list[str] = []
    console: list[str] = []
    policies: set[str | None] = set()
    seen: dict[str, object] = {"violations": violations, "console": console, "policies": policies}
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=stack.base_url, viewport=DESKTOP)
            context.set_default_timeout(20_000)
            context.expose_function("reportCspViolation", lambda violation: violations.append(violation))
            context.add_init_script(REPORT_VIOLATIONS)
            page = context.new_page()
            page.on("console", lambda message: console.append(message.text))
            page.on("pageerror", lambda error: console.append(f"page error: {error}"))

            def record_policy(response: Response) -> None:
                if response.request.resource_type == "document":
                    policies.add(response.headers.get("content-security-policy"))

            page.on("response", record_policy)
            seen["short_job"] = run_a_short_job(page)
            seen["long_job"], seen["cookie_visible_to_script"] = cancel_a_long_job(page)
        finally:
            browser.close()
    return seen


def run_a_short_job(page: Page) -> str:
    page.goto("/")
    fill_form(page, size=32, iterations=10, preview_every=2)
    expect(page.locator("#field-content-input [data-thumb]")).to_be_visible()  # a blob: thumbnail
    job_id = submit_form(page)
    assert wait_for_status(page, {"succeeded", "failed", "cancelled"}, timeout_s=60) == "succeeded"
    wait_for_image(page, "#result-image")
    return job_id


def cancel_a_long_job(page: Page) -> tuple[str, bool]:
    page.goto("/")
    fill_form(page, size=48, iterations=2000)
    job_id = submit_form(page)
    cookie_visible = "atelier_job_token" in page.evaluate("document.cookie")
    page.click("#cancel-button")  # job.js: fetch POST /api/jobs/{id}/cancel, with the HttpOnly cookie
    assert wait_for_status(page, {"cancelled"}, timeout_s=30) == "cancelled"
    return job_id, cookie_visible


def test_pages_work_under_the_servers_policy_without_violations(stack: Stack) -> None:
    with ThreadPoolExecutor(max_workers=1) as thread:
        seen = thread.submit(browse_under_the_servers_policy, stack).result(timeout=180)

    assert seen["policies"] == {CONTENT_SECURITY_POLICY}  # every page came with the server's policy
    assert seen["violations"] == []
    assert [line for line in seen["console"] if "Content Security Policy" in line or "error" in line] == []
    assert stack.status(seen["short_job"])["status"] == "succeeded"
    assert stack.status(seen["long_job"])["status"] == "cancelled"
    assert seen["cookie_visible_to_script"] is False
