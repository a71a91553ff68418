"""The pages need nothing a strict Content-Security-Policy forbids: no inline script, handler or style.

The policy is added to every HTML response here (the app may or may not send one itself), and the
browser reports each violation through the `securitypolicyviolation` event.
"""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Route, expect

from tests.e2e.helpers import fill_form, submit_form, wait_for_image, wait_for_status
from tests.support.stack import Stack

STRICT_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  const where = `${event.sourceFile}:${event.lineNumber}`;
  window.reportCspViolation(`${event.violatedDirective} ${event.blockedURI} ${where}`);
});
"""


def with_strict_policy(route: Route) -> None:
    if route.request.resource_type != "document":
        route.continue_()  # scripts, images and the event stream go straight through
        return
    response = route.fetch(max_redirects=0)  # let the browser follow the form's 303 itself
    headers = dict(response.headers)
    if headers.get("content-type", "").startswith("text/html"):
        headers["content-security-policy"] = STRICT_POLICY
    route.fulfill(response=response, headers=headers)


def test_upload_and_job_pages_run_under_a_strict_policy(context: BrowserContext, stack: Stack) -> None:
    violations: list[str] = []
    context.expose_function("reportCspViolation", lambda violation: violations.append(violation))
    context.add_init_script(REPORT_VIOLATIONS)
    context.route("**/*", with_strict_policy)
    page = context.new_page()

    page.goto("/")
    assert page.evaluate("typeof window.AtelierRecent") == "object"  # the scripts did run
    fill_form(page, size=32, iterations=20, preview_every=5)
    expect(page.locator("#field-content-input [data-thumb]")).to_be_visible()  # a blob: URL
    submit_form(page)
    assert wait_for_status(page, {"succeeded", "failed", "cancelled"}, timeout_s=60) == "succeeded"
    wait_for_image(page, "#result-image")
    page.fill("#compare-slider", "30")  # moves the split through the CSSOM, which a CSP allows
    page.goto("/")
    expect(page.locator("#recent-list li")).to_have_count(1)

    assert violations == []
