"""Property-based fuzzing of the upload validator (app/uploads.py): whatever the bytes, clean_image
either returns a clean RGB PNG within the limits or raises UploadRejected with a 4xx status;
nothing else ever escapes (which the web app would turn into a 500).

Bounded: a few hundred examples per property, well under a minute together on 2 CPU cores.
"""

from __future__ import annotations

import asyncio
import io
import itertools
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.admission import FilePartCounter, FilePartTooLarge
from app.uploads import CleanImage, DecodersBusy, DecodeSlots, UploadRejected, clean_image
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


def multipart_body(parts: list[tuple[str, bool, int]], boundary: str) -> bytes:
    """A multipart/form-data body: (field name, is a file, size) per part, filled with b"x"."""
    body = b""
    for name, is_file, size in parts:
        filename = f'; filename="{name}.png"' if is_file else ""
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n\r\n'.encode()
        body += b"x" * size + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["content", "style", "mask", "size"]), st.booleans(), st.integers(0, 900)),
        min_size=1, max_size=6,
    ),
    st.integers(1, 700),
    st.lists(st.integers(1, 500), min_size=1, max_size=40),
)  # fmt: skip
def test_file_part_counter_refuses_exactly_the_first_file_part_over_the_limit(
    parts: list[tuple[str, bool, int]], max_bytes: int, cuts: list[int]
) -> None:
    # Whatever the chunking, the counter refuses as soon as the first file part over the limit has
    # passed it, names that part, and lets everything else through.
    body = multipart_body(parts, "fuzzboundary")
    counter = FilePartCounter.for_headers(b"multipart/form-data; boundary=fuzzboundary", max_bytes)
    assert counter is not None
    too_large = [name for name, is_file, size in parts if is_file and size > max_bytes]
    position, fed = 0, 0
    try:
        for cut in itertools.cycle(cuts):
            if position >= len(body):
                break
            chunk = body[position : position + cut]
            position += len(chunk)
            counter.feed(chunk)
            fed = position
    except FilePartTooLarge as refused:
        assert too_large and refused.field == too_large[0]
        assert fed < len(body)  # cut off before the end of the body
        return
    assert not too_large


@settings(max_examples=60, deadline=None, database=None)
@given(
    st.integers(1, 3),
    st.integers(100, 1000),
    st.lists(st.tuples(st.integers(1, 1500), st.integers(0, 3)), min_size=1, max_size=12),
)
def test_decode_slots_never_exceed_their_count_or_budget_and_serve_everyone(
    slots: int, budget: int, decodes: list[tuple[int, int]]
) -> None:
    # Each decode: (estimated bytes, how many event-loop turns it holds its slot).
    decode_slots = DecodeSlots(slots, budget)
    seen: list[tuple[int, int]] = []

    async def decode(cost: int, turns: int) -> None:
        async with decode_slots.held(cost, timeout=30):
            seen.append(decode_slots.in_use())
            for _ in range(turns):
                await asyncio.sleep(0)

    async def all_of_them() -> tuple[int, int]:
        await asyncio.gather(*(decode(cost, turns) for cost, turns in decodes))
        return decode_slots.in_use()

    assert run_in_fresh_loop(all_of_them()) == (0, 0)
    assert len(seen) == len(decodes)
    for running, used in seen:
        assert 1 <= running <= slots
        assert used <= budget  # an estimate above the budget counts as the budget: it runs alone


def test_a_decode_that_waits_too_long_is_refused_and_gives_its_turn_back() -> None:
    decode_slots = DecodeSlots(1, 1000)

    async def scenario() -> tuple[str, tuple[int, int]]:
        async with decode_slots.held(500, timeout=1):
            try:
                async with decode_slots.held(500, timeout=0.05):
                    return "decoded beside the first", decode_slots.in_use()
            except DecodersBusy:
                pass
        async with decode_slots.held(500, timeout=0.05):  # the refused one left no trace in the queue
            return "refused, then the next decoded", decode_slots.in_use()

    assert run_in_fresh_loop(scenario()) == ("refused, then the next decoded", (1, 500))
