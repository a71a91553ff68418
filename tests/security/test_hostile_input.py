"""Hostile uploads and requests: each gets a clear 4xx JSON answer, nothing is queued or stored, and the
server stays healthy. Cases already in tests/app/test_bad_uploads.py (truncated PNG, 0 bytes, byte and
pixel limits, 5 styles, most option ranges) are not repeated here.

Unusual but valid images are accepted and converted (documented in docs/security.md): CMYK JPEG,
16-bit PNG, palette with transparency (composited onto white), animated GIF/WebP (first frame).
"""

from __future__ import annotations

import io
import os
import random
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app.uploads import clean_image
from tests.security import hostile_files as hostile
from tests.security.helpers import CONTENT, STYLE, leaves_no_trace, stranger
from tests.support.images import flat_png_bytes, png_bytes
from tests.support.stack import Stack

LIMITS = {"max_pixels": 1_000_000, "min_side": 16}  # the test stacks' settings


@pytest.mark.parametrize(
    ("upload", "status", "words"),
    [
        (random.Random(7).randbytes(50_000), 415, "not an image"),
        (hostile.TRUNCATED_JPEG, 422, "truncated or corrupt"),
        (hostile.png_bomb(), 413, "too many pixels"),
        (flat_png_bytes(4000, 4000), 413, "over the limit of 1,000,000 pixels"),
        (hostile.png_with_text_bomb(), 422, "corrupt"),
        (png_bytes(1, 1), 422, "each side must be at least 16 pixels"),
        (flat_png_bytes(10000, 10), 422, "each side must be at least 16 pixels"),
        (hostile.SVG, 415, "not an image"),
        (hostile.HTML, 415, "not an image"),
        (hostile.EPS, 415, "not an image"),
        (hostile.ICO, 415, "not an image"),
    ],
    ids=[
        "random-bytes",
        "truncated-jpeg",
        "bomb-100000x100000",
        "bomb-4000x4000-flat",
        "ztxt-text-bomb",
        "1x1",
        "10000x10",
        "svg-named-png",
        "html-named-png",
        "eps-ghostscript",
        "ico",
    ],
)
@pytest.mark.parametrize("field", ["content", "style"])
def test_hostile_image_is_refused_and_leaves_no_trace(
    web_only: Stack, upload: bytes, status: int, words: str, field: str
) -> None:
    content, styles = (upload, [STYLE]) if field == "content" else (CONTENT, [STYLE, upload])
    with leaves_no_trace(web_only):
        started = time.monotonic()
        response = web_only.submit(content, styles)  # named .png, typed image/png
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["detail"].startswith(f"{field}: ") and words in response.json()["detail"]
    assert time.monotonic() - started < 10  # refused without decoding the declared pixels


def test_fifty_style_files_are_refused_before_any_is_decoded(web_only: Stack) -> None:
    with leaves_no_trace(web_only):
        response = web_only.submit(CONTENT, [STYLE] * 50)
    assert response.status_code == 422
    assert "at most 4 style images are accepted, not 50" in response.json()["detail"]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"size": "nan"}, "size"),
        ({"size": "NaN"}, "size"),
        ({"size": "256.5"}, "size"),
        ({"size": "1e3"}, "size"),
        ({"size": "-0x10"}, "size"),
        ({"size": "２５６"}, "size"),  # full-width digits
        ({"size": "9" * 5000}, "size"),
        ({"iterations": "ten"}, "iterations"),
        ({"iterations": "-1"}, "iterations"),
        ({"iterations": str(2**64)}, "iterations"),
        ({"content_weight": "1e309"}, "content_weight"),
        ({"style_weight": "-inf"}, "style_weight"),
        ({"style_weight": "0x10"}, "style_weight"),
        ({"preview_every": "-5"}, "preview_every"),
        ({"preserve_colors": "maybe"}, "preserve_colors"),
        ({"optimizer": "ADAM; rm -rf /"}, "optimizer"),
        ({"preset": "x" * 100_000}, "preset"),
        ({"style_blend": "nan"}, "style_blend"),
        ({"style_blend": "1,,,-1"}, "style_blend"),
        ({"style_blend": "one"}, "style_blend"),
        ({"style_blend": "1e308,1e308"}, "style_blend"),  # found by schemathesis: was a 500
    ],
    ids=lambda value: str(value)[:40] if isinstance(value, dict) else value,
)
def test_option_values_out_of_range_or_not_numbers_are_422(
    web_only: Stack, options: dict[str, str], field: str
) -> None:
    with leaves_no_trace(web_only):
        response = web_only.submit(CONTENT, [STYLE, STYLE], **options)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]
    assert len(response.text) < 5000  # a huge value is not echoed back


BOUNDARY = "hostile-boundary"


def part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


WHOLE_FORM = part("content", CONTENT, "c.png") + part("style", STYLE, "s.png")
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (MULTIPART, WHOLE_FORM),  # no closing boundary
        (MULTIPART, WHOLE_FORM[: len(WHOLE_FORM) // 2]),  # cut in the middle of a file
        ("multipart/form-data", WHOLE_FORM + f"--{BOUNDARY}--\r\n".encode()),  # no boundary parameter
        (MULTIPART, b""),
        (MULTIPART, b"garbage without any boundary at all"),
        (MULTIPART, part("content", CONTENT, "c.png") + f"--{BOUNDARY}--\r\n".encode()),  # no style
        (MULTIPART, part("style", STYLE, "s.png") + f"--{BOUNDARY}--\r\n".encode()),  # no content
        (MULTIPART, f"--{BOUNDARY}\r\n\r\n".encode() + CONTENT + f"\r\n--{BOUNDARY}--\r\n".encode()),
        ("application/json", b'{"content": "x", "style": ["y"]}'),
        ("application/x-www-form-urlencoded", b"content=%89PNG&style=x"),
        ("text/plain", b"hello"),
    ],
    ids=[
        "no-closing-boundary",
        "cut-mid-file",
        "no-boundary-param",
        "empty",
        "garbage",
        "no-style-part",
        "no-content-part",
        "part-without-headers",
        "json",
        "urlencoded",
        "text",
    ],
)
def test_malformed_or_incomplete_multipart_is_a_4xx(web_only: Stack, content_type: str, body: bytes) -> None:
    with leaves_no_trace(web_only), stranger(web_only) as client:
        response = client.post("/api/jobs", content=body, headers={"content-type": content_type})
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["detail"]


def test_a_100_mb_stream_is_cut_off_early_without_being_read(web_process: Stack) -> None:
    # Real uvicorn over a socket: whether the server stops reading early is the point.
    web_only = web_process
    chunk = os.urandom(1024 * 1024)  # one megabyte, sent 100 times: never 100 MB in memory
    sent = 0

    def hundred_megabytes():
        nonlocal sent
        yield part("content", b"", "a.png")[:-2]  # the part's headers; its data follows
        for _ in range(100):
            sent += len(chunk)
            yield chunk

    with leaves_no_trace(web_only), stranger(web_only) as client:
        try:
            response = client.post(
                "/api/jobs", content=hundred_megabytes(), headers={"content-type": MULTIPART}
            )
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
            response = None  # the server answered 413 and closed while we were still sending
    if response is not None:
        assert response.status_code == 413
        assert response.json()["detail"].startswith("content: the file is larger than the limit")
    assert sent < 40 * 1024 * 1024, f"the server read {sent} bytes before refusing"


ODD_NAMES = [
    "../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "/etc/cron.d/evil",
    "a\x00.png",
    "🎨 名前 тест.png",
    "con.png",
    ".htaccess",
    "a\r\nX-Injected: 1.png",
    "%2e%2e%2fetc%2fpasswd",
]


@pytest.mark.parametrize("filename", ODD_NAMES, ids=[name[:20].encode().hex() for name in ODD_NAMES])
def test_odd_file_names_never_reach_the_filesystem(web_only: Stack, filename: str) -> None:
    files_before = all_files(web_only.storage_dir)
    files = [("content", (filename, CONTENT, "image/png")), ("style", (filename, STYLE, "image/png"))]
    with web_only.client as client:
        response = client.post("/api/jobs", files=files)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    assert all_files(web_only.storage_dir) - files_before == {
        f"jobs/{job_id}/content.png",
        f"jobs/{job_id}/style-0.png",
    }
    with web_only.client as client:
        assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 200


def test_a_10000_character_file_name_is_refused_by_the_form_parser(web_only: Stack) -> None:
    long_name = "x" * 10_000 + ".png"
    files = [("content", (long_name, CONTENT, "image/png")), ("style", ("s.png", STYLE, "image/png"))]
    with leaves_no_trace(web_only), stranger(web_only) as client:
        response = client.post("/api/jobs", files=files)
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid multipart data."}


def all_files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


# --- unusual images that are accepted, and what becomes of them ------------------------------


def decoded(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        return np.asarray(image)


def test_cmyk_jpeg_is_converted_to_rgb() -> None:
    pixels = decoded(clean_image(hostile.cmyk_jpeg(), **LIMITS).png)
    assert np.abs(pixels[24, 24].astype(int) - (255, 0, 0)).max() <= 8


def test_16_bit_pngs_are_scaled_to_8_bits_not_clipped_to_white() -> None:
    grey = decoded(clean_image(hostile.png_16bit_grey_gradient(), **LIMITS).png)
    assert grey[0, 0].max() <= 2 and grey[-1, -1].min() >= 253
    assert 120 <= grey.mean() <= 135  # a full gradient, not a white page
    rgb = decoded(clean_image(hostile.png_16bit_rgb(), **LIMITS).png)
    expected = hostile.image_array(48, 48, seed=80)
    assert np.abs(rgb.astype(int) - expected).max() <= 1


def test_transparent_palette_pixels_become_white() -> None:
    pixels = decoded(clean_image(hostile.palette_png_with_transparency(), **LIMITS).png)
    assert tuple(pixels[24, 5]) == (255, 255, 255)  # transparent black -> white background
    assert tuple(pixels[24, 40]) == (0, 0, 255)


@pytest.mark.parametrize("image_format", ["PNG", "WEBP"])
def test_animated_images_use_their_first_frame(web_only: Stack, image_format: str) -> None:
    # An animated GIF content is a clip (docs/video.md); other animated formats are images. The media
    # type claims GIF: only the bytes count.
    with web_only.client as client:
        response = client.post(
            "/api/jobs",
            files=[
                ("content", ("anim", hostile.animated(image_format), "image/gif")),
                ("style", ("s.png", STYLE, "image/png")),
            ],
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        stored = client.get(f"/api/jobs/{job_id}/content")
        assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 200

    pixels = decoded(stored.content)
    assert np.abs(pixels[24, 24].astype(int) - (255, 0, 0)).max() <= 8  # the red first frame, not green
