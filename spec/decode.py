"""Decoding any image file the service is given, defined once: decoded by Pillow (the content type and
file name are never trusted), bounded in bytes and pixels, shrunk to the largest side a job can use,
and re-encoded as a metadata-free RGB PNG.

The web's uploads (app/uploads.py) and the style library (core/library.py: the built-in paintings
and an operator's own) both go through clean_image, so an operator's file gets the same hardening as
an upload. Standard library and Pillow only, like the rest of spec/.

Memory: each decode holds the decoded picture once (a JPEG decoded at the smallest DCT scale that
still covers the stored size) plus strips of a few megapixels, never a second full-size copy.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

# The engine's Pillow-only conversion (16-bit greyscale scaled, transparency onto white), so what is
# stored is what the engine would read.
from spec.pixels import DEEP_GREY_MODES, grey_full_scale, to_rgb
from spec.plan import largest_style_side

# The image types the service accepts, defined here once: Pillow's format name -> (media type, the name
# people know). Only plain raster formats: Pillow can also open formats that shell out (EPS runs
# Ghostscript). The upload page's file inputs, its help text and its script (through the shared
# front-end module, app/frontend.py) all take the list from here.
ACCEPTED_IMAGES = {
    "PNG": ("image/png", "PNG"),
    "JPEG": ("image/jpeg", "JPEG"),
    "WEBP": ("image/webp", "WebP"),
    "GIF": ("image/gif", "GIF"),
    "BMP": ("image/bmp", "BMP"),
    "TIFF": ("image/tiff", "TIFF"),
}
ALLOWED_FORMATS = tuple(ACCEPTED_IMAGES)
ACCEPTED_MEDIA_TYPES = tuple(media_type for media_type, _ in ACCEPTED_IMAGES.values())
_NAMES = [name for _, name in ACCEPTED_IMAGES.values()]
ACCEPTED_NAMES = ", ".join(_NAMES[:-1]) + " or " + _NAMES[-1]  # "PNG, JPEG, WebP, GIF, BMP or TIFF"
# Source pixels converted at a time (one strip: its crop, its RGB copy and its reduction).
STRIP_PIXELS = 2 * 1024 * 1024
# Image.reduce() first by whole factors while the picture stays at least this many times the stored
# size, then Lanczos: as Pillow's thumbnail() does, indistinguishable from Lanczos alone, and faster.
REDUCING_GAP = 2.0
LANCZOS_SUPPORT = 3.0  # Pillow's Lanczos kernel reaches 3 output pixels each side
_ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transposition that shows the picture upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Bytes per pixel of Pillow's decoded images by mode (RGB is stored as 4 bytes a pixel).
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}


class UploadRejected(Exception):
    """An image (an upload, a library file) that cannot be used; status_code is 400, 413, 415 or 422."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


ImageSource = bytes | BinaryIO


@dataclass(frozen=True)
class CleanImage:
    """An accepted upload: RGB PNG bytes without metadata, and its size after EXIF rotation (and after
    shrinking to the largest side a job can use)."""

    png: bytes
    width: int
    height: int


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, before anything is decoded."""

    width: int
    height: int
    mode: str
    format: str


def stored_longest_side(field: str, max_size: int) -> int:
    """The longest side an upload of field ("content", "style" or "mask") is stored at, at most: what
    the largest job (ATELIER_MAX_SIZE) can use. A mask is resized to the stored content's size."""
    return largest_style_side(max_size) if field == "style" else max_size


def fitted_size(width: int, height: int, longest: int | None) -> tuple[int, int]:
    """width x height scaled down (never up) so that its longest side is at most longest."""
    if longest is None or max(width, height) <= longest:
        return width, height
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def inspect_image(source: ImageSource, *, max_pixels: int, min_side: int) -> ImageHeader:
    """Read only the image's header: its size and type, refused (UploadRejected) when it is not an
    accepted image or its sides are out of bounds. Nothing is decoded."""
    with _opened(source, max_pixels=max_pixels, min_side=min_side) as image:
        return ImageHeader(image.width, image.height, image.mode, str(image.format))


def decode_bytes(header: ImageHeader, longest: int | None) -> int:
    """An upper estimate of the memory clean_image needs for this image: the decoded picture (a JPEG
    at its DCT scale), the strips being converted, the stored picture and its PNG."""
    width, height = header.width, header.height
    target = fitted_size(width, height, longest)
    if header.format == "JPEG":
        scale = max(1, min(width // target[0], height // target[1]))
        step = next(step for step in (8, 4, 2, 1) if scale >= step)
        width, height = math.ceil(width / step), math.ceil(height / step)
    decoded = width * height * _PIXEL_BYTES.get(header.mode, 4)
    strips = 4 * STRIP_PIXELS * 4
    stored = target[0] * target[1] * (4 + 3)  # the RGB image, then its PNG (at worst uncompressed)
    return decoded + strips + stored


def clean_image(
    source: ImageSource, *, max_pixels: int, min_side: int, longest: int | None = None
) -> CleanImage:
    """Decode source (bytes, or a binary file read from its start) as an image and return it as a
    metadata-free RGB PNG, at most longest px on its longest side (None: as large as it is);
    raises UploadRejected when it is unusable."""
    try:
        return _as_png(clean_rgb(source, max_pixels=max_pixels, min_side=min_side, longest=longest))
    finally:  # the decoded picture is garbage by now
        release_freed_memory()


def _as_png(rgb: Image.Image) -> CleanImage:
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG")  # a fresh image: no EXIF, ICC profile or text chunks of the upload
    return CleanImage(png=buffer.getvalue(), width=rgb.width, height=rgb.height)


def release_freed_memory() -> None:
    """Give the memory of a finished decode back to the system (glibc's malloc_trim).

    Pillow takes a decoded picture in 16 MB blocks; once glibc has seen such a block freed it serves the
    next ones from its heaps (its mmap threshold rises to 32 MB), and each decode thread has a heap of its
    own, so without this the web keeps every picture it ever decoded: four 64 MP uploads left it 620 MB
    larger (docs/reliability.md, "Resource faults"). A no-op where the C library is not glibc.
    """
    if _malloc_trim is not None:
        _malloc_trim(0)


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_malloc_trim = _find_malloc_trim()


def clean_rgb(
    source: ImageSource, *, max_pixels: int, min_side: int, longest: int | None = None
) -> Image.Image:
    """clean_image's picture before it is encoded: every check done, a new upright RGB image at most
    longest px on its longest side (the style library checks its files with it at start and encodes
    them only when a job needs one: encoding is most of clean_image's time)."""
    with _opened(source, max_pixels=max_pixels, min_side=min_side) as image:
        target = fitted_size(image.width, image.height, longest)
        if image.format == "JPEG" and target != image.size:
            image.draft(None, target)  # decode at 1/2, 1/4 or 1/8 scale when that still covers target
        image.load()
        try:
            rgb = _fitted_rgb(image, target)
        except ValueError as error:  # a mode Pillow cannot convert to RGB
            raise UploadRejected(422, f"the image cannot be converted to RGB ({error})") from error
        orientation = image.getexif().get(_ORIENTATION_TAG)
    if orientation in _UPRIGHT:
        rgb = rgb.transpose(_UPRIGHT[orientation])
    return rgb


@contextlib.contextmanager
def _opened(source: ImageSource, *, max_pixels: int, min_side: int) -> Iterator[Image.Image]:
    """The image opened (header read, nothing decoded) with its sides checked; Pillow's errors while
    it is in use are turned into UploadRejected."""
    stream = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    stream.seek(0)
    with warnings.catch_warnings():
        # Pillow warns (and above 2x its own limit raises) on huge images; our explicit check below
        # gives the person a clearer message, so treat the warning as an error too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(stream, formats=ALLOWED_FORMATS) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise UploadRejected(
                        413, f"the image is {width}x{height} pixels, over the limit of {max_pixels:,} pixels"
                    )
                if min(width, height) < min_side:
                    raise UploadRejected(
                        422,
                        f"the image is {width}x{height} pixels; each side must be at least {min_side} pixels",
                    )
                yield image
        except UploadRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise UploadRejected(413, f"the image has too many pixels ({error})") from error
        except UnidentifiedImageError as error:
            raise UploadRejected(
                415, f"not an image this service reads (accepted: {ACCEPTED_NAMES})"
            ) from error
        except (OSError, SyntaxError, ValueError) as error:
            # Pillow reports truncated or corrupt data as OSError ("image file is truncated") or
            # SyntaxError (broken PNG chunks).
            raise UploadRejected(422, f"the image is truncated or corrupt ({error})") from error


def _fitted_rgb(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The decoded image as a new RGB image of size (at most its own), converted (to_rgb) and
    shrunk strip by strip, so that no full-size converted copy ever exists.

    The same pixels as to_rgb(image).reduce(factor).resize(size, LANCZOS, box): each strip of output
    rows is computed from the source rows its Lanczos kernel reaches, reduced on the same grid.
    """
    width, height = image.size
    out_width, out_height = size
    grey_scale = grey_full_scale(image) if image.mode in DEEP_GREY_MODES else None
    out = Image.new("RGB", size)
    if size == image.size:
        rows = max(1, STRIP_PIXELS // width)
        for top in range(0, height, rows):
            out.paste(to_rgb(image.crop((0, top, width, min(height, top + rows))), grey_scale), (0, top))
        return out
    factor = max(1, int(min(width / out_width, height / out_height) / REDUCING_GAP))
    reduced_width, reduced_height = width / factor, height / factor  # as Pillow's resize(reducing_gap)
    reduced_rows = math.ceil(reduced_height)
    scale = reduced_height / out_height  # reduced rows per output row
    margin = math.ceil(LANCZOS_SUPPORT * max(scale, 1.0)) + 1
    rows = max(1, STRIP_PIXELS // (width * max(1, math.ceil(height / out_height))))
    for top in range(0, out_height, rows):
        bottom = min(out_height, top + rows)
        first = max(0, math.floor(top * scale) - margin)
        last = min(reduced_rows, math.ceil(bottom * scale) + margin)
        strip = to_rgb(image.crop((0, first * factor, width, min(height, last * factor))), grey_scale)
        if factor > 1:
            strip = strip.reduce(factor)
        box = (0.0, top * scale - first, reduced_width, bottom * scale - first)
        out.paste(strip.resize((out_width, bottom - top), Image.Resampling.LANCZOS, box=box), (0, top))
    return out
