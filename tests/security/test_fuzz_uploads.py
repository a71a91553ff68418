"""Property-based fuzzing of the upload validator (app/uploads.py): whatever the bytes, clean_image
either returns a clean RGB PNG within the limits or raises UploadRejected with a 4xx status;
nothing else ever escapes (which the web app would turn into a 500).

Bounded: a few hundred examples per property, well under a minute together on 2 CPU cores.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.uploads import CleanImage, UploadRejected, clean_image, read_limited
from tests.security.hostile_files import animated, cmyk_jpeg, encode, palette_png_with_transparency
from tests.support.images import image_array

MAX_PIXELS = 250_000
MIN_SIDE = 16
FUZZ = settings(
    max_examples=1000,
    deadline=None,  # a slow decode on a busy shared machine is not a failure
    database=None,  # no .hypothesis/ folder in the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _seed_images() -> list[bytes]:
    picture = Image.fromarray(image_array(40, 32, seed=90))
    return [
        encode(picture, "PNG"),
        encode(picture, "JPEG", quality=80),
        encode(picture, "JPEG", progressive=True),
        encode(picture.convert("P"), "GIF"),
        encode(picture, "WEBP"),
        encode(picture, "BMP"),
        encode(picture, "TIFF"),
        encode(picture, "TIFF", compression="tiff_lzw"),
        cmyk_jpeg(),
        palette_png_with_transparency(),
        animated("GIF"),
        animated("WEBP"),
    ]


SEEDS = _seed_images()


def check_outcome(data: bytes) -> None:
    """The property: a CleanImage within the limits, or UploadRejected with a 4xx status."""
    try:
        clean = clean_image(data, max_pixels=MAX_PIXELS, min_side=MIN_SIDE)
    except UploadRejected as rejected:
        assert rejected.status_code in (400, 413, 415, 422)
        assert rejected.detail
        return
    assert isinstance(clean, CleanImage)
    with Image.open(io.BytesIO(clean.png)) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        assert image.size == (clean.width, clean.height)
        assert not image.info.get("exif") and "icc_profile" not in image.info
    assert min(clean.width, clean.height) >= MIN_SIDE
    assert clean.width * clean.height <= MAX_PIXELS


def run_in_fresh_loop(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run in a thread of its own: the browser tests' Playwright keeps a loop running in
    the main thread for the whole session, and asyncio.run refuses to start beside it."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_are_cleaned_or_rejected(data: bytes) -> None:
    check_outcome(data)


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A valid image of some format with a few bytes overwritten, a cut, or a splice of its own bytes."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        del data[draw(st.integers(1, len(data))) :]
    if draw(st.booleans()):
        start = draw(st.integers(0, len(data)))
        data[start:start] = draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


@FUZZ
@given(mutated_images())
def test_mutated_images_of_every_accepted_format_are_cleaned_or_rejected(data: bytes) -> None:
    check_outcome(data)


MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"]
FORMATS = ["PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF"]


@settings(max_examples=120, deadline=None, database=None)
@given(st.sampled_from(MODES), st.sampled_from(FORMATS), st.integers(1, 600), st.integers(1, 600))
def test_valid_images_of_any_mode_are_accepted_exactly_when_within_the_limits(
    mode: str, image_format: str, width: int, height: int
) -> None:
    image = Image.fromarray(image_array(width, height, seed=width)).convert("RGBA").convert(mode)
    try:
        data = encode(image, image_format)
    except (OSError, ValueError, KeyError):
        assume(False)  # Pillow cannot write this mode in this format: nothing to test
    within = min(width, height) >= MIN_SIDE and width * height <= MAX_PIXELS
    try:
        clean = clean_image(data, max_pixels=MAX_PIXELS, min_side=MIN_SIDE)
    except UploadRejected as rejected:
        assert not within, f"{mode} {image_format} {width}x{height}: {rejected.detail}"
        assert rejected.status_code == (413 if width * height > MAX_PIXELS else 422)
        return
    assert within and (clean.width, clean.height) == (width, height)


class Chunks:
    """An upload whose read() hands out the given chunks, then b"" (like Starlette's UploadFile)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)

    async def read(self, size: int = -1) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.binary(min_size=1, max_size=600), max_size=12), st.integers(1, 4000))
def test_read_limited_returns_everything_within_the_limit_or_refuses(
    chunks: list[bytes], max_bytes: int
) -> None:
    total = sum(len(chunk) for chunk in chunks)
    try:
        data = run_in_fresh_loop(read_limited(Chunks(chunks), max_bytes))
    except UploadRejected as rejected:
        assert (rejected.status_code, total == 0) in ((400, True), (413, False))
        assert rejected.status_code == 400 or total > max_bytes
        return
    assert data == b"".join(chunks) and 0 < total <= max_bytes
