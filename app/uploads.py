"""Checking uploaded images: decoded by Pillow (the content type and file name are never trusted),
bounded in bytes and pixels, and re-encoded as a metadata-free RGB PNG.

No TensorFlow here: the web process does this before anything is queued. Of the worker it imports
only the engine's Pillow-only pixel conversion (spec/pixels.py), as it imports the option
schema.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Protocol

from PIL import Image, ImageOps, UnidentifiedImageError

# The engine's Pillow-only conversion (16-bit greyscale scaled, transparency onto white), so the
# web stores what the engine would read; like the option schema, it imports nothing but Pillow.
from spec.pixels import to_rgb

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
CHUNK_BYTES = 1024 * 1024


class UploadRejected(Exception):
    """An upload that cannot be used; status_code is 400, 413, 415 or 422."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


class AsyncReadable(Protocol):
    async def read(self, size: int = -1) -> bytes: ...


@dataclass(frozen=True)
class CleanImage:
    """An accepted upload: RGB PNG bytes without metadata, and its size after EXIF rotation."""

    png: bytes
    width: int
    height: int


async def read_limited(upload: AsyncReadable, max_bytes: int) -> bytes:
    """Read an upload in chunks, refusing (413) as soon as it grows past max_bytes."""
    chunks: list[bytes] = []
    total = 0
    while chunk := await upload.read(CHUNK_BYTES):
        total += len(chunk)
        if total > max_bytes:
            raise UploadRejected(413, f"the file is larger than the limit of {_megabytes(max_bytes)}")
        chunks.append(chunk)
    if total == 0:
        raise UploadRejected(400, "the file is empty")
    return b"".join(chunks)


def clean_image(data: bytes, *, max_pixels: int, min_side: int) -> CleanImage:
    """Decode data as an image and return it re-encoded; raises UploadRejected when it is unusable."""
    with warnings.catch_warnings():
        # Pillow warns (and above 2x its own limit raises) on huge images; our explicit check below
        # gives the person a clearer message, so treat the warning as an error too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise UploadRejected(
                        413, f"the image is {width}x{height} pixels, over the limit of {max_pixels:,} pixels"
                    )
                image.load()
                rgb = to_rgb(ImageOps.exif_transpose(image))
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
    if min(rgb.size) < min_side:
        raise UploadRejected(
            422, f"the image is {rgb.width}x{rgb.height} pixels; each side must be at least {min_side} pixels"
        )
    # A fresh image carries no EXIF, ICC profile, text chunks or other metadata of the upload.
    clean = Image.frombytes("RGB", rgb.size, rgb.tobytes())
    buffer = io.BytesIO()
    clean.save(buffer, format="PNG")
    return CleanImage(png=buffer.getvalue(), width=clean.width, height=clean.height)


def to_mask(image: CleanImage, width: int, height: int) -> CleanImage:
    """An accepted upload as a style mask: greyscale PNG of ``width`` x ``height`` (resized with
    bilinear filtering, which never overshoots at a mask's edges as Lanczos would, when its size
    differs; the aspect ratio is the caller's to check)."""
    with Image.open(io.BytesIO(image.png)) as decoded:
        grey = decoded.convert("L")
    if grey.size != (width, height):
        grey = grey.resize((width, height), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    grey.save(buffer, format="PNG")
    return CleanImage(png=buffer.getvalue(), width=width, height=height)


def is_black(image: CleanImage) -> bool:
    """Whether every pixel of the (greyscale) image is black."""
    with Image.open(io.BytesIO(image.png)) as decoded:
        return decoded.convert("L").getextrema()[1] == 0


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB" if size >= 1024 * 1024 else f"{size} bytes"
