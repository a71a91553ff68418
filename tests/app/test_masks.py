"""Masks through the API (issue 13): multipart field `mask`, none or one per style image in order.

In-process (the `web` fixture: the app on a real Redis, no worker) for what the web decides: bad
masks get a 4xx JSON naming the problem with nothing stored or queued; a good one is stored greyscale
at the content's size and shown at /jobs/{id}/masks/{index}. Against the test stack (uvicorn, Redis,
a Celery worker with random weights) for what the worker does with them.
"""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support.images import png_bytes
from tests.support.inprocess import InProcessWeb
from tests.support.stack import Stack

CONTENT = png_bytes(64, 48, seed=40)  # 64 wide, 48 high
STYLE = png_bytes(48, 48, seed=41)
OTHER_STYLE = png_bytes(48, 48, seed=42)


def mask_png(width: int, height: int, white_columns: slice = slice(None), mode: str = "L") -> bytes:
    mask = np.zeros((height, width), np.uint8)
    mask[:, white_columns] = 255
    buffer = io.BytesIO()
    Image.fromarray(mask, "L").convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def submit(stack: Stack, styles: list[bytes], masks: list[bytes], **options: object) -> httpx.Response:
    files = [("content", ("content.png", CONTENT, "image/png"))]
    files += [("style", (f"style{index}.png", data, "image/png")) for index, data in enumerate(styles)]
    # An empty part (b"") is "no mask for this style" (curl -F mask=@/dev/null; a browser sends an
    # untouched file input so, with filename="").
    files += [("mask", (f"mask{index}.png", data, "image/png")) for index, data in enumerate(masks)]
    with stack.client as client:
        return client.post("/api/jobs", files=files, data={k: str(v) for k, v in options.items()})


def grey(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "L"
        return np.asarray(image)


@pytest.mark.parametrize(
    ("styles", "masks", "words"),
    [
        ([STYLE], [mask_png(64, 48), mask_png(64, 48)], "mask: 2 mask(s) for 1 style image(s)"),
        ([STYLE, OTHER_STYLE], [mask_png(64, 48)], "mask: 1 mask(s) for 2 style image(s)"),
        (
            [STYLE],
            [mask_png(48, 48)],
            "mask: mask 1 is 48x48 pixels; its aspect ratio differs from the content",
        ),
        ([STYLE], [mask_png(65, 48)], "aspect ratio differs"),  # 1.6% wider
        ([STYLE], [mask_png(64, 48, slice(0, 0))], "mask: every mask is black"),
        ([STYLE, OTHER_STYLE], [mask_png(32, 24, slice(0, 0))] * 2, "mask: every mask is black"),
        ([STYLE], [b"not an image at all" * 10], "mask: not an image"),
        ([STYLE], [png_bytes(8, 6)], "mask: the image is 8x6 pixels"),
    ],
    ids=["more-masks", "fewer-masks", "square", "1.6%-wider", "black", "all-black", "not-image", "tiny"],
)
def test_bad_masks_are_refused_and_leave_no_trace(
    web: InProcessWeb, styles: list[bytes], masks: list[bytes], words: str
) -> None:
    queued_before, files_before = web.queue_length(), web.stored_files()
    response = submit(web, styles, masks)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/json"
    assert words in response.json()["detail"]
    assert web.queue_length() == queued_before
    assert web.stored_files() == files_before


# Style 1 on the left half (sent at half size, RGB: resized and turned grey), style 2 without a mask
# (it goes everywhere).
HALF_SIZE_LEFT_MASK_AND_NONE = [mask_png(32, 24, slice(0, 16), mode="RGB"), b""]


def test_a_masked_job_stores_and_shows_its_masks(web: InProcessWeb) -> None:
    response = submit(web, [STYLE, OTHER_STYLE], HALF_SIZE_LEFT_MASK_AND_NONE, size=64, iterations=4)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    status = web.status(job_id)
    assert status["status"] == "queued"
    assert status["masks"] == [True, False]
    assert status["notes"] == ["Mask 1 was 32x24 pixels; it was resized to the content's 64x48."]
    with web.client as client:
        stored = client.get(f"/jobs/{job_id}/masks/0")
        assert client.get(f"/jobs/{job_id}/masks/1").status_code == 404  # that style had none
        assert client.get(f"/jobs/{job_id}/masks/2").status_code == 404
    assert stored.status_code == 200 and stored.headers["content-type"] == "image/png"
    mask = grey(stored.content)
    assert mask.shape == (48, 64)
    assert mask[:, :30].min() == 255 and mask[:, 34:].max() == 0  # left half white, resized


def test_only_empty_mask_parts_mean_no_masks(web: InProcessWeb) -> None:
    response = submit(web, [STYLE], [b""], size=32, iterations=1)
    assert response.status_code == 202, response.text
    status = web.status(response.json()["id"])
    assert status["masks"] == [] and status["notes"] == []
    assert not any(path.startswith(f"jobs/{status['id']}/mask") for path in web.stored_files())


def test_the_worker_runs_a_job_with_a_mask_and_a_style_without_one(stack: Stack) -> None:
    response = submit(stack, [STYLE, OTHER_STYLE], HALF_SIZE_LEFT_MASK_AND_NONE, size=64, iterations=4)
    assert response.status_code == 202, response.text
    status = stack.wait_for(response.json()["id"], {"succeeded", "failed"})
    assert status["status"] == "succeeded", status["error"]
    assert status["masks"] == [True, False]


def test_a_black_mask_keeps_the_content_where_it_is_black(stack: Stack) -> None:
    """One style on the left half only: the worker keeps the right half of the content as it is."""
    response = submit(
        stack, [STYLE], [mask_png(64, 48, slice(0, 32))], size=64, iterations=8, style_weight=10
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert stack.wait_for(job_id, {"succeeded", "failed"})["status"] == "succeeded"
    with stack.client as client:
        result = client.get(f"/api/jobs/{job_id}/result").content
    with Image.open(io.BytesIO(result)) as image, Image.open(io.BytesIO(CONTENT)) as content:
        output, original = np.asarray(image.convert("RGB"), int), np.asarray(content.convert("RGB"), int)
    assert np.abs(output - original)[:, 34:].max() <= 3
    assert np.abs(output - original)[:, :30].mean() > 1
