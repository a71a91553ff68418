"""The job page tells a person who looks elsewhere: the tab's title shows the progress while the job
runs, and a job that finishes while the tab is hidden raises a system notification (Notification
API, permission granted in the browser context, asked for by a button and never on load); clicking
it focuses the job's tab."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.e2e.conftest import DESKTOP
from tests.e2e.helpers import cancel_unless_finished, wait_for_js, wait_for_status
from tests.support.images import png_bytes
from tests.support.stack import Stack

# Records every notification the page raises, and window.focus() calls, around the real API.
RECORD_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  window.__notifications = [];
  window.__permissionRequests = 0;
  window.__focusCalls = 0;
  const realFocus = window.focus.bind(window);
  window.focus = () => { window.__focusCalls += 1; realFocus(); };
  class Recording extends Real {
    constructor(title, options = {}) {
      super(title, options);
      const entry = { title, body: options.body, tag: options.tag, closed: false };
      window.__notifications.push(entry);
      this.__entry = entry;
      const close = this.close.bind(this);
      this.close = () => { entry.closed = true; close(); };
      window.__lastNotification = this;
    }
  }
  Object.defineProperty(Recording, "permission", { get: () => Real.permission });
  Recording.requestPermission = (...args) => {
    window.__permissionRequests += 1;
    return Real.requestPermission(...args);
  };
  window.Notification = Recording;
})();
"""

HIDE_THE_TAB = """() => {
  Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
  Object.defineProperty(document, "hidden", { value: true, configurable: true });
  document.dispatchEvent(new Event("visibilitychange"));
}"""


@pytest.fixture
def notifying(browser: Browser, stack: Stack) -> Iterator[BrowserContext]:
    """A browser profile that has allowed this site's notifications, recording what it raises."""
    context = browser.new_context(base_url=stack.base_url, viewport=DESKTOP)
    context.grant_permissions(["notifications"], origin=stack.base_url)
    context.add_init_script(RECORD_NOTIFICATIONS)
    context.set_default_timeout(20_000)
    yield context
    context.close()


def start_job(stack: Stack, iterations: int) -> str:
    response = stack.submit(
        png_bytes(64, 48, seed=31), [png_bytes(48, 48, seed=32)], size=48, iterations=iterations
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_the_title_shows_the_progress_while_the_job_runs(notifying: BrowserContext, stack: Stack) -> None:
    job_id = start_job(stack, iterations=120)
    page: Page = notifying.new_page()
    try:
        page.goto(f"/jobs/{job_id}")
        wait_for_js(page, "() => /^[1-9][0-9]?% · Atelier$/.test(document.title)", what="a running title")
        # One snapshot: render() sets both, and the job moves on between two separate reads.
        title, shown = page.evaluate(
            "() => [document.title, document.getElementById('progress-percent').textContent]"
        )
        assert re.fullmatch(r"\d+% · Atelier", title) and title.startswith(shown or "?")

        assert wait_for_status(page, {"succeeded", "failed", "cancelled"}) == "succeeded"
        assert page.title() == f"Done · job {job_id[:8]} · Atelier"
        # Finished while visible: the person is looking, so no notification.
        assert page.evaluate("window.__notifications.length") == 0
    finally:
        cancel_unless_finished(stack, job_id)


def test_a_job_finishing_in_a_hidden_tab_raises_a_notification_that_focuses_it(
    notifying: BrowserContext, stack: Stack
) -> None:
    job_id = start_job(stack, iterations=150)
    page = notifying.new_page()
    try:
        page.goto(f"/jobs/{job_id}")
        button = page.locator("#notify-button")
        # Allowed before for this site: on, without asking again; nothing asked on load.
        assert button.text_content() == "You will be notified"
        assert page.evaluate("window.__permissionRequests") == 0
        button.click()  # off
        assert button.text_content() == "Notify me when done"
        button.click()  # on again: now the page asks (the profile has granted it)
        wait_for_js(
            page, "() => document.getElementById('notify-button').textContent === 'You will be notified'"
        )
        assert page.evaluate("window.__permissionRequests") == 1

        wait_for_status(page, {"running"})
        page.evaluate(HIDE_THE_TAB)
        assert wait_for_status(page, {"succeeded", "failed", "cancelled"}) == "succeeded"
        wait_for_js(page, "() => window.__notifications.length > 0", what="a notification")

        [shown] = page.evaluate("window.__notifications")
        assert shown == {
            "title": "Done · Atelier",
            "body": f"Job {job_id[:8]}",
            "tag": f"atelier-{job_id}",
            "closed": False,
        }
        assert button.is_hidden()  # nothing left to wait for
        page.evaluate("window.__lastNotification.dispatchEvent(new Event('click'))")
        assert page.evaluate("window.__focusCalls") == 1
        assert page.evaluate("window.__notifications[0].closed") is True
    finally:
        cancel_unless_finished(stack, job_id)
