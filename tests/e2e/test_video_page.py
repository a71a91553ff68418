"""A clip through the page in a real Chromium: upload it, watch the frames progress, play the result
(canPlayType and currentTime advancing) and toggle before/after."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.conftest import ARTIFACTS
from tests.e2e.helpers import (
    cancel_unless_finished,
    png_payload,
    screenshot,
    set_options,
    submit_form,
    wait_for_js,
)
from tests.support.clips import encode, pan, photo
from tests.support.stack import Stack

FRAMES = 10
CLIP = encode(pan(photo(), FRAMES, 48, 48), fps=8)


def test_a_clip_is_uploaded_watched_frame_by_frame_and_played(page: Page, stack: Stack) -> None:
    page.goto("/")
    page.set_input_files("#content-input", {"name": "clip.mp4", "mimeType": "video/mp4", "buffer": CLIP})
    page.set_input_files("#style-input", png_payload("style.png", 48, 48, seed=3))
    expect(page.locator("#content-input-error")).to_have_text("")
    set_options(page, size=48, iterations=12, preview_every=0)
    page.fill("#frame_iterations", "6")
    job_id = submit_form(page)
    try:
        texts: set[str] = set()

        def finished() -> bool:
            texts.add(page.inner_text("#progress-text"))
            return page.eval_on_selector(
                "#job", "job => ['succeeded', 'failed', 'cancelled'].includes(job.dataset.status)"
            )

        while not finished():
            page.wait_for_timeout(40)
        assert page.eval_on_selector("#job", "job => job.dataset.status") == "succeeded", texts
        later = [t for t in texts if re.fullmatch(rf"Frame ([2-9]|10) of {FRAMES}, step \d of 6", t)]
        assert later, texts  # the frames were watched as they progressed

        video = page.locator("#result-video")
        expect(video).to_be_visible()
        media_type = stack.status(job_id)["video"]["media_type"]
        codecs = (
            'video/mp4; codecs="avc1.42E01E"' if media_type == "video/mp4" else 'video/webm; codecs="vp9"'
        )
        assert page.evaluate("type => document.createElement('video').canPlayType(type)", codecs) in (
            "maybe",
            "probably",
        )
        page.evaluate("() => document.getElementById('result-video').play()")
        wait_for_js(page, "() => document.getElementById('result-video').currentTime > 0.3", timeout_s=15,
                    what="the result video playing")  # fmt: skip
        assert page.evaluate("() => document.getElementById('result-video').videoWidth") == 48
        screenshot(page, ARTIFACTS, "video-job-after")

        page.click("#video-toggle")
        expect(page.locator("#video-toggle")).to_have_attribute("aria-pressed", "true")
        wait_for_js(page, "() => document.getElementById('result-video').currentSrc.endsWith('/video/input')",
                    what="the before clip loaded")  # fmt: skip
        expect(page.locator("#video-caption")).to_contain_text("Before")
        expect(page.locator("#frames-download")).to_have_attribute("href", f"/api/jobs/{job_id}/frames.zip")
    finally:
        cancel_unless_finished(stack, job_id)
