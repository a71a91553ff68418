"""Masks in a real Chromium: a region painted with the mouse on the upload page arrives at the worker as
the right mask image, the worker keeps the photo where nothing was painted, and the job page shows the
mask; the keyboard paints too; a mask of the wrong shape is refused before upload.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import PHONE
from tests.e2e.helpers import (
    no_horizontal_scroll,
    png_payload,
    screenshot,
    set_options,
    submit_form,
    upload_page_without_javascript,
    wait_for_image,
    wait_for_status,
)
from tests.support.images import png_bytes
from tests.support.stack import Stack

CONTENT = (64, 48)  # width, height of the content: the size most browser tests use (compiled steps reused)


def open_painter(page: Page) -> dict[str, float]:
    """Choose a content and a style image, open the mask section; the canvas's box on screen."""
    page.goto("/")
    page.set_input_files("#content-input", png_payload("content.png", *CONTENT, seed=1))
    page.set_input_files("#style-input", png_payload("style.png", 48, 48, seed=2))
    page.click("#field-mask summary")
    canvas = page.locator("#mask-canvas")
    expect(canvas).to_be_visible()
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    return box


def drag(page: Page, box: dict[str, float], points: list[tuple[float, float]]) -> None:
    """A mouse stroke through points given as fractions of the canvas's width and height."""
    x, y = points[0]
    page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=8)
    page.mouse.up()


def grey(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float64)


def test_a_mask_painted_with_the_mouse_reaches_the_worker_and_the_job_page(
    page: Page, stack: Stack, artifacts: Path
) -> None:
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    box = open_painter(page)
    page.locator("#mask-brush-size").fill("20")  # 20% of the longer side: about 13 px of 64
    # Style 1 is chosen by default: three vertical strokes fill most of the left half.
    for x in (0.12, 0.25, 0.38):
        drag(page, box, [(x, 0.02), (x, 0.98)])
    expect(page.locator("[data-mask-summary]")).to_contain_text("Style 1: painted on about")
    screenshot(page, artifacts, "masks-painted")

    set_options(page, size=48, iterations=30)
    job_id = submit_form(page)

    # The mask as stored for the worker: the content's shape, white where painted, black elsewhere.
    with stack.client as client:
        response = client.get(f"/jobs/{job_id}/masks/0")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    mask = grey(response.content)
    height, width = mask.shape
    assert abs(width / height - CONTENT[0] / CONTENT[1]) < 0.01 * CONTENT[0] / CONTENT[1]
    painted = mask[int(0.1 * height) : int(0.9 * height), int(0.1 * width) : int(0.4 * width)]
    unpainted = mask[:, int(0.6 * width) :]
    assert painted.mean() > 240, painted.mean()
    assert unpainted.mean() < 5, unpainted.mean()

    assert wait_for_status(page, {"succeeded", "failed", "cancelled"}, timeout_s=90) == "succeeded"
    # The worker used it: with one style and a mask, the unpainted right part keeps the photo.
    with stack.client as client:
        result_png = client.get(f"/api/jobs/{job_id}/result").content
    result = np.asarray(Image.open(io.BytesIO(result_png)).convert("RGB"))
    out_height, out_width = result.shape[:2]
    photo = Image.open(io.BytesIO(png_bytes(*CONTENT, seed=1)))
    content = photo.resize((out_width, out_height), Image.Resampling.LANCZOS)
    change = np.abs(result.astype(np.float64) - np.asarray(content, dtype=np.float64)).mean(axis=2)
    kept = change[:, int(0.7 * out_width) :].mean()
    styled = change[:, int(0.1 * out_width) : int(0.35 * out_width)].mean()
    assert kept < 4, f"the unpainted region changed by {kept:.1f} grey levels"
    assert styled > 3 * kept + 2, f"the painted region changed by {styled:.1f}, the unpainted by {kept:.1f}"

    # The job page shows the mask it used.
    page.reload()
    expect(page.locator("#masks-section")).to_be_visible()
    mask_image = page.locator("#masks-section .job-mask a img")
    expect(mask_image).to_have_attribute("alt", "Mask of style 1: white where it goes")
    wait_for_image(page, "#masks-section .job-mask a img")
    screenshot(page, artifacts, "masks-job-page")
    # Canvas, blob: images and the mask PNGs all work under the server's strict CSP.
    assert [line for line in console if "Content Security Policy" in line] == []


def test_with_two_styles_the_one_painted_gets_its_mask_in_its_place(page: Page, stack: Stack) -> None:
    box = open_painter(page)
    page.set_input_files("#style2-input", png_payload("style2.png", 48, 48, seed=4))
    page.check("input[name=mask-target][value='1']")  # paint for style 2
    page.locator("#mask-brush-size").fill("30")
    for x in (0.7, 0.9):
        drag(page, box, [(x, 0.02), (x, 0.98)])
    expect(page.locator("[data-mask-summary]")).to_contain_text(
        "Style 1: nothing painted, so it goes everywhere"
    )
    set_options(page, size=32, iterations=2)
    job_id = submit_form(page)

    # Style 1's part was empty (no mask), style 2's carries the painted right side.
    assert stack.status(job_id)["masks"] == [False, True]
    with stack.client as client:
        assert client.get(f"/jobs/{job_id}/masks/0").status_code == 404
        mask = grey(client.get(f"/jobs/{job_id}/masks/1").content)
    width = mask.shape[1]
    assert mask[:, int(0.75 * width) : int(0.85 * width)].mean() > 240
    assert mask[:, : int(0.4 * width)].mean() < 5
    expect(page.locator("#masks-section .job-mask").first).to_contain_text("No mask: everywhere")
    stack.wait_for(job_id, {"succeeded", "failed", "cancelled"}, timeout=60)


def test_the_keyboard_paints_and_nothing_painted_sends_no_mask(page: Page, stack: Stack) -> None:
    box = open_painter(page)
    assert box["width"] > 0
    canvas = page.locator("#mask-canvas")
    canvas.focus()
    page.keyboard.press("Space")  # brush down at the centre
    for _ in range(6):
        page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Space")  # lifted
    expect(page.locator("[data-mask-summary]")).to_contain_text("Style 1: painted on about")

    page.click("[data-mask-clear-all]")
    expect(page.locator("[data-mask-summary]")).to_contain_text("Nothing painted")
    set_options(page, size=32, iterations=2)
    job_id = submit_form(page)
    with stack.client as client:
        assert client.get(f"/jobs/{job_id}/masks/0").status_code == 404
    expect(page.locator("#masks-section")).to_be_hidden()
    stack.wait_for(job_id, {"succeeded", "failed", "cancelled"}, timeout=60)


def test_a_mask_image_of_another_shape_is_refused_in_the_page(page: Page, stack: Stack) -> None:
    queued_before = stack.queue_length()
    open_painter(page)
    page.set_input_files("#mask1-input", png_payload("square.png", 64, 64, seed=3))
    expect(page.locator("#mask1-input-error")).to_contain_text("not the shape of your photo")
    page.click("#submit-button")
    expect(page.locator("#mask1-input")).to_be_focused()
    expect(page.locator("#submit-status")).to_contain_text("fix")
    assert page.url.rstrip("/") == stack.base_url
    assert stack.queue_length() == queued_before

    # A mask of the right shape (here: the top half white) is drawn into style 1's region.
    half = np.zeros((CONTENT[1], CONTENT[0]), np.uint8)
    half[: CONTENT[1] // 2] = 255
    buffer = io.BytesIO()
    Image.fromarray(half).save(buffer, format="PNG")
    top_half = {"name": "top.png", "mimeType": "image/png", "buffer": buffer.getvalue()}
    page.set_input_files("#mask1-input", top_half)
    expect(page.locator("#mask1-input-error")).to_be_empty()
    expect(page.locator("[data-mask-summary]")).to_contain_text("about 50% of the picture (from top.png)")


def test_without_javascript_a_mask_image_per_style_is_sent_as_it_is(browser: Browser, stack: Stack) -> None:
    top_half = np.zeros((CONTENT[1] // 2, CONTENT[0] // 2), np.uint8)  # half the photo's size, same shape
    top_half[: CONTENT[1] // 4] = 255
    buffer = io.BytesIO()
    Image.fromarray(top_half).save(buffer, format="PNG")
    with upload_page_without_javascript(browser, stack) as page:
        page.set_input_files("#content-input", png_payload("content.png", *CONTENT, seed=1))
        page.set_input_files("#style-input", png_payload("style.png", 48, 48, seed=2))
        page.click("#field-mask summary")
        expect(page.locator("#mask-canvas")).to_be_hidden()  # painting needs JavaScript; uploading does not
        page.set_input_files(
            "#mask1-input", {"name": "top.png", "mimeType": "image/png", "buffer": buffer.getvalue()}
        )
        set_options(page, size=32, iterations=2)
        job_id = submit_form(page)  # the untouched mask input of the second style sends an empty part
        expect(page.locator("#masks-section .job-note")).to_contain_text("resized")

    assert stack.status(job_id)["masks"] == [True]
    with stack.client as client:
        mask = grey(client.get(f"/jobs/{job_id}/masks/0").content)
    assert mask.shape == (CONTENT[1], CONTENT[0])  # stored at the content's size
    assert mask[: CONTENT[1] // 2 - 2].mean() > 250
    assert mask[CONTENT[1] // 2 + 2 :].mean() < 5
    stack.wait_for(job_id, {"succeeded", "failed", "cancelled"}, timeout=60)


def test_without_javascript_a_refused_mask_is_explained_next_to_the_masks(
    browser: Browser, stack: Stack
) -> None:
    queued_before, files_before = stack.queue_length(), stack.stored_files()
    with upload_page_without_javascript(browser, stack) as page:
        page.set_input_files("#content-input", png_payload("content.png", *CONTENT, seed=1))
        page.set_input_files("#style-input", png_payload("style.png", 48, 48, seed=2))
        page.click("#field-mask summary")
        page.set_input_files("#mask1-input", png_payload("square.png", 64, 64, seed=3))
        with page.expect_navigation() as navigation:
            page.click("#submit-button")

        assert navigation.value.status == 422
        expect(page.locator("#form-alert")).to_contain_text("aspect ratio")
        expect(page.locator("#field-mask")).to_have_attribute("open", "")
        expect(page.locator("#mask-error")).to_contain_text("aspect ratio")
    assert stack.queue_length() == queued_before
    assert stack.stored_files() == files_before


def test_a_tiff_mask_the_browser_cannot_draw_is_sent_as_it_is(page: Page, stack: Stack) -> None:
    open_painter(page)
    left = np.zeros((CONTENT[1], CONTENT[0]), np.uint8)
    left[:, : CONTENT[0] // 2] = 255
    buffer = io.BytesIO()
    Image.fromarray(left).save(buffer, format="TIFF")
    page.set_input_files(
        "#mask1-input", {"name": "left.tif", "mimeType": "image/tiff", "buffer": buffer.getvalue()}
    )
    expect(page.locator("[data-mask-summary]")).to_contain_text("Style 1: mask left.tif, sent as it is")
    set_options(page, size=32, iterations=2)
    job_id = submit_form(page)

    with stack.client as client:
        mask = grey(client.get(f"/jobs/{job_id}/masks/0").content)
    assert mask[:, : CONTENT[0] // 2 - 1].mean() > 250
    assert mask[:, CONTENT[0] // 2 + 1 :].mean() < 5
    stack.wait_for(job_id, {"succeeded", "failed", "cancelled"}, timeout=60)


def test_the_painter_fits_a_phone(browser: Browser, stack: Stack, artifacts: Path) -> None:
    with browser.new_context(base_url=stack.base_url, viewport=PHONE) as context:
        page = context.new_page()
        box = open_painter(page)
        page.set_input_files("#style2-input", png_payload("style2.png", 48, 48, seed=4))
        drag(page, box, [(0.2, 0.2), (0.4, 0.8)])
        expect(page.locator("[data-mask-summary]")).to_contain_text("Style 1: painted on about")
        assert no_horizontal_scroll(page)
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        page.locator("#field-mask").screenshot(path=str(artifacts / "masks-phone.png"))
