"""A finished job's pictures over real HTTP, Redis and a Celery worker (issue 12): the preview of a
small job keeps its size, the result downloads as PNG by default and as JPEG on request.

That large previews are scaled down is tested on the function itself (tests/worker/test_previews.py):
a real 2048 px job would take many minutes on a CPU.
"""

from __future__ import annotations

import io

from PIL import Image

from tests.support.images import png_bytes
from tests.support.stack import Stack


def opened(data: bytes) -> tuple[str | None, tuple[int, int]]:
    with Image.open(io.BytesIO(data)) as image:
        return image.format, image.size


def test_preview_keeps_a_small_size_and_the_result_downloads_as_png_or_jpeg(stack: Stack) -> None:
    response = stack.submit(
        png_bytes(80, 60, seed=64), [png_bytes(48, 48, seed=65)], size=64, iterations=6, preview_every=3
    )
    assert response.status_code == 202, response.text
    final = stack.wait_for(response.json()["id"], {"succeeded", "failed", "cancelled"})
    assert final["status"] == "succeeded", final["error"]
    assert final["progress"] == 1.0

    with stack.client as client:
        preview = client.get(final["preview_url"])
        png = client.get(final["result_url"])
        jpeg = client.get(final["result_url"], params={"format": "jpeg"})
        other = client.get(final["result_url"], params={"format": "gif"})

    assert preview.headers["content-type"] == "image/jpeg"
    assert opened(preview.content) == ("JPEG", (64, 48))  # under 1024 px: not scaled
    assert png.headers["content-type"] == "image/png" and opened(png.content) == ("PNG", (64, 48))
    assert 'filename="atelier-' in png.headers["content-disposition"]
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    assert opened(jpeg.content) == ("JPEG", (64, 48))
    assert jpeg.headers["content-disposition"].endswith('.jpg"')
    assert other.status_code == 422 and other.headers["content-type"] == "application/json"
    assert "format" in other.json()["detail"]
