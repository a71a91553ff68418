"""The style library in Chromium against the real stack: a painting chosen by mouse and by keyboard,
"Try an example" with a painting (no file dialog at all), the same with JavaScript off, a painting
mixed with an upload (blend and masks), and the gallery on a phone."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page

from tests.e2e.conftest import PHONE
from tests.e2e.helpers import (
    FINISHED,
    JOB_URL,
    no_horizontal_scroll,
    png_payload,
    screenshot,
    set_options,
    submit_form,
    upload_page_without_javascript,
    wait_for_image,
    wait_for_status,
)
from tests.support.stack import Stack

STYLE_GALLERY = "#field-style-input .gallery"


def _credits(page: Page) -> str:
    return page.inner_text("#job-credits")


def _settings_credits(page: Page) -> list[str]:
    return page.locator(".options-list dd.credit").all_inner_texts()


def test_the_great_wave_picked_by_mouse_paints_a_job_that_credits_it(page: Page, artifacts: Path) -> None:
    page.goto("/")
    page.set_input_files("#content-input", png_payload("content.png", 64, 48, seed=1))
    page.click(f"{STYLE_GALLERY} summary")
    page.click(f"{STYLE_GALLERY} label.gallery-item:has-text('The Great Wave off Kanagawa')")
    # The drop zone shows the painting and its credit, as it would a file.
    wait_for_image(page, "#field-style-input .dropzone-thumb")
    assert "Katsushika Hokusai" in page.inner_text("#field-style-input [data-filename]")
    set_options(page, size=32, iterations=8)
    submit_form(page)

    assert wait_for_status(page, FINISHED) == "succeeded"
    assert "The Great Wave off Kanagawa by Katsushika Hokusai (c. 1831)" in _credits(page)
    assert _settings_credits(page) == ["The Great Wave off Kanagawa, Katsushika Hokusai, c. 1831"]
    screenshot(page, artifacts, "library-job-great-wave")

    # "Use this style again" chooses the painting again, by id, rather than copying it as a file.
    page.click("#reuse-link")
    page.locator("#submit-status", has_text="copied").wait_for()
    assert page.is_checked("input[name=style_id][value=hokusai-great-wave]")
    assert "Katsushika Hokusai" in page.inner_text("#field-style-input [data-filename]")
    assert page.evaluate("document.getElementById('style-input').files.length") == 0


def test_the_scream_picked_by_keyboard_paints_a_job_that_credits_it(page: Page) -> None:
    page.goto("/")
    page.set_input_files("#content-input", png_payload("content.png", 64, 48, seed=3))
    page.focus(f"{STYLE_GALLERY} summary")
    page.keyboard.press("Enter")  # opens "Choose a painting"
    page.keyboard.press("Tab")  # into the radio group, on its checked button ("No painting")
    scream = page.get_by_role("radio", name=re.compile("The Scream"))
    for _ in range(10):
        if scream.is_checked():
            break
        page.keyboard.press("ArrowRight")
    assert scream.is_checked()
    assert page.evaluate("document.activeElement.value") == "munch-the-scream"
    set_options(page, size=32, iterations=8)
    page.focus("#submit-button")
    page.keyboard.press("Enter")
    page.wait_for_url(JOB_URL)

    assert wait_for_status(page, FINISHED) == "succeeded"
    assert "The Scream by Edvard Munch (1893)" in _credits(page)


def test_try_an_example_with_a_painting_needs_no_file_at_all(page: Page, stack: Stack) -> None:
    dialogs: list[object] = []
    page.on("filechooser", lambda chooser: dialogs.append(chooser))
    page.goto("/")
    page.click("[data-try-example]")
    wait_for_image(page, "#field-content-input .dropzone-thumb")
    assert "Astronaut Eileen Collins" in page.inner_text("[data-example-credit]")
    page.click("[data-try-example]")  # the next example
    page.locator("[data-example-credit]", has_text="Chelsea the cat").wait_for()
    page.click(f"{STYLE_GALLERY} summary")
    page.click(f"{STYLE_GALLERY} label.gallery-item:has-text('Udnie')")
    set_options(page, size=32, iterations=8)
    job_id = submit_form(page)

    assert wait_for_status(page, FINISHED) == "succeeded"
    assert not dialogs
    status = stack.status(job_id)
    assert status["content_credit"]["id"] == "chelsea"  # sent by id: the job credits the photo
    assert status["style_credits"][0]["id"] == "picabia-udnie"
    assert "Chelsea the cat" in _credits(page) and "Francis Picabia" in _credits(page)


def test_an_example_and_a_painting_without_javascript(browser: Browser, stack: Stack) -> None:
    with upload_page_without_javascript(browser, stack) as page:
        assert page.is_hidden("[data-try-example]")  # the one-click button needs JavaScript
        page.click("#field-content-input .gallery summary")
        page.click("#field-content-input label.gallery-item:has-text('A cup of coffee')")
        page.click(f"{STYLE_GALLERY} summary")
        page.click(f"{STYLE_GALLERY} label.gallery-item:has-text('The Shipwreck')")
        set_options(page, size=32, iterations=8)
        job_id = submit_form(page)
        final = stack.wait_for(job_id, FINISHED)
        assert final["status"] == "succeeded", final
        page.reload()
        assert "The Shipwreck by J. M. W. Turner (1805)" in _credits(page)
        assert "A cup of coffee" in _credits(page)
        assert "The Shipwreck, J. M. W. Turner, 1805" in _settings_credits(page)


def test_a_painting_mixes_with_an_upload_with_the_blend_and_masks(page: Page, stack: Stack) -> None:
    page.goto("/")
    page.set_input_files("#content-input", png_payload("content.png", 64, 48, seed=5))
    page.click(f"{STYLE_GALLERY} summary")
    page.click(f"{STYLE_GALLERY} label.gallery-item:has-text('Composition VII')")
    page.set_input_files("#style2-input", png_payload("mine.png", 48, 48, seed=6))
    assert page.is_enabled("#blend")  # a painting and a file: two styles to mix
    page.fill("#blend", "0.7")
    page.click("#field-mask summary")
    left = png_payload("left.png", 64, 48)
    left["buffer"] = _half_mask(64, 48, left_white=True)
    right = png_payload("right.png", 64, 48)
    right["buffer"] = _half_mask(64, 48, left_white=False)
    page.set_input_files("#mask1-input", left)
    page.set_input_files("#mask2-input", right)
    set_options(page, size=32, iterations=8)
    job_id = submit_form(page)

    assert wait_for_status(page, FINISHED) == "succeeded"
    status = stack.status(job_id)
    assert status["style_count"] == 2
    assert [c and c["id"] for c in status["style_credits"]] == ["kandinsky-composition-vii", None]
    assert status["options"]["style_blend"] == pytest.approx([0.7, 0.3])
    assert status["masks"] == [True, True]
    assert _settings_credits(page) == ["Composition VII, Wassily Kandinsky, 1913", "your image"]


def _half_mask(width: int, height: int, *, left_white: bool) -> bytes:
    mask = Image.new("L", (width, height), 0 if left_white else 255)
    mask.paste(255 if left_white else 0, (0, 0, width // 2, height))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_the_gallery_fits_a_phone_and_a_desktop(page: Page, artifacts: Path, viewport: str) -> None:
    if viewport == "phone":
        page.set_viewport_size(PHONE)
    page.goto("/")
    page.click(f"{STYLE_GALLERY} summary")
    page.click("#field-content-input .gallery summary")
    page.click(f"{STYLE_GALLERY} label.gallery-item:has-text('The Starry Night')")
    for index in range(6):
        wait_for_image(page, f"{STYLE_GALLERY} label.gallery-item:nth-of-type({index + 2}) img")
    assert no_horizontal_scroll(page)
    cards = page.locator(f"{STYLE_GALLERY} label.gallery-item")
    assert cards.count() == 7  # "No painting" and the six
    first = cards.nth(1).bounding_box()
    assert first is not None and first["width"] >= 80  # a thumbnail one can see and tap
    page.locator("#field-style-input").screenshot(path=str(artifacts / f"library-gallery-{viewport}.png"))
    screenshot(page, artifacts, f"library-upload-page-{viewport}")


def test_the_about_page_credits_every_painting_and_photo(page: Page) -> None:
    page.goto("/")
    page.click("footer a:has-text('Credits')")
    text = page.inner_text("main")
    for words in ("The Starry Night, Vincent van Gogh, 1889", "Chelsea the cat, photo: Stefan van der Walt"):
        assert words in text
