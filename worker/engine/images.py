"""Image input and output: decode anything Pillow reads into uint8 HxWx3 RGB, resize, encode, save.

Arrays are NumPy uint8 (H, W, 3) RGB everywhere outside the optimiser; the optimiser works on float32
in [0, 1] (see ``to_float`` / ``to_uint8``).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from spec.errors import ImageError
from spec.pixels import to_rgb

ImageSource = str | os.PathLike[str] | bytes | bytearray | BinaryIO

DEFAULT_MIN_SIDE = 16
_JPEG_SUFFIXES = {".jpg", ".jpeg"}
_PNG_SUFFIXES = {".png", ""}


def load_image(source: ImageSource, min_side: int = DEFAULT_MIN_SIDE) -> np.ndarray:
    """Decode ``source`` (a path, the file's bytes, or a binary file object) into uint8 HxWx3 RGB.

    EXIF orientation is applied, every mode is converted to RGB (transparency composited on white).
    Raises ImageError for a missing, empty, truncated or undecodable file, or one smaller than
    ``min_side`` pixels on a side.
    """
    name, stream = _open_source(source)
    try:
        with Image.open(stream) as opened:
            opened.load()  # decode now, so truncation is reported here and not later
            # In place: no copy of the whole picture unless it has to turn (a 4096 px style is 67 MB).
            ImageOps.exif_transpose(opened, in_place=True)
            image = opened
            if image.width < min_side or image.height < min_side:
                raise ImageError(
                    f"{name} is {image.width}x{image.height} pixels; images must be at least "
                    f"{min_side} pixels on each side"
                )
            return _to_rgb_array(image, name)
    except Image.DecompressionBombError as error:
        raise ImageError(f"{name} has too many pixels to decode safely: {error}") from error
    except UnidentifiedImageError as error:
        raise ImageError(f"{name} is not an image format Atelier can read (PNG, JPEG, WebP, ...)") from error
    except OSError as error:  # Pillow reports truncated or corrupt data as OSError
        raise ImageError(f"{name} is truncated or corrupt: {error}") from error


def _open_source(source: ImageSource) -> tuple[str, BinaryIO]:
    """A display name and a readable binary stream for ``source``; empty input is refused here."""
    if isinstance(source, bytes | bytearray):
        if not source:
            raise ImageError("the image data is empty (0 bytes)")
        return "image data", io.BytesIO(source)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            data = path.read_bytes()
        except FileNotFoundError as error:
            raise ImageError(f"{path}: no such file") from error
        except IsADirectoryError as error:
            raise ImageError(f"{path} is a directory, not an image file") from error
        except OSError as error:
            raise ImageError(f"{path} cannot be read: {error.strerror or error}") from error
        if not data:
            raise ImageError(f"{path} is empty (0 bytes)")
        return str(path), io.BytesIO(data)
    data = source.read()
    name = str(getattr(source, "name", "image data"))
    if not data:
        raise ImageError(f"{name} is empty (0 bytes)")
    return name, io.BytesIO(data)


def _to_rgb_array(image: Image.Image, name: str) -> np.ndarray:
    """uint8 HxWx3 RGB: deep greyscale scaled, transparency on white (spec/pixels.py)."""
    try:
        rgb = image if image.mode == "RGB" else to_rgb(image)  # RGB already: no converted copy
    except ValueError as error:
        raise ImageError(
            f"{name} uses the image mode {image.mode!r}, which cannot be converted to RGB"
        ) from error
    return np.asarray(rgb, dtype=np.uint8).copy()


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` resized to exactly ``height`` x ``width`` with Lanczos resampling."""
    if image.shape[:2] == (height, width):
        return image
    resized = Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(resized, dtype=np.uint8).copy()


def resize_to_longest(image: np.ndarray, longest: int) -> np.ndarray:
    """``image`` scaled (up or down) so that its longest side is ``longest`` pixels."""
    height, width = image.shape[:2]
    scale = longest / max(height, width)
    return resize(image, max(1, round(height * scale)), max(1, round(width * scale)))


def resize_to_max(image: np.ndarray, max_size: int) -> np.ndarray:
    """``image`` scaled down so that its longest side is at most ``max_size``; never scaled up."""
    if max(image.shape[:2]) <= max_size:
        return image
    return resize_to_longest(image, max_size)


def output_format(path: str | os.PathLike[str]) -> str:
    """The Pillow format for ``path``: JPEG for .jpg/.jpeg, PNG for .png or no extension."""
    suffix = Path(path).suffix.lower()
    if suffix in _JPEG_SUFFIXES:
        return "JPEG"
    if suffix in _PNG_SUFFIXES:
        return "PNG"
    raise ImageError(f"{path}: unsupported output extension {suffix!r}; use .png, .jpg or .jpeg")


def encode_image(image: np.ndarray, image_format: str = "PNG", quality: int = 95) -> bytes:
    """``image`` (uint8 HxWx3) encoded as PNG or JPEG bytes."""
    buffer = io.BytesIO()
    options = {"quality": quality} if image_format.upper() == "JPEG" else {}
    Image.fromarray(image).save(buffer, format=image_format.upper(), **options)
    return buffer.getvalue()


def save_image(image: np.ndarray, path: str | os.PathLike[str], quality: int = 95) -> Path:
    """Write ``image`` to ``path`` as PNG, or JPEG when the extension says so; returns the path."""
    target = Path(path)
    target.write_bytes(encode_image(image, output_format(target), quality))
    return target


# ITU-R BT.601 luma weights, as rgb_to_ycbcr and Pillow's convert("L").
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
BLACK = 0.5 / 255  # mask values below this are black (nothing of that style there)


def as_mask(image: np.ndarray) -> np.ndarray:
    """A mask as float32 H x W in [0, 1] from a uint8 or float grey (H x W) or RGB (H x W x 3) image."""
    mask = np.asarray(image)
    if mask.ndim == 3:
        mask = mask[..., :3] @ LUMA[: mask.shape[2]] if mask.shape[2] >= 3 else mask[..., 0]
    if mask.ndim != 2:
        raise ImageError(f"a mask must be a grey or RGB image, not an array of shape {np.shape(image)}")
    mask = mask.astype(np.float32) / 255.0 if np.asarray(image).dtype == np.uint8 else mask.astype(np.float32)
    return np.clip(mask, 0.0, 1.0)


def is_black(mask: np.ndarray) -> bool:
    """Whether a mask (as as_mask reads it) has no pixel of its style."""
    return bool(as_mask(mask).max() < BLACK)


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 0..255 -> float32 0..1."""
    return image.astype(np.float32) / 255.0


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float 0..1 -> uint8 0..255, clipped and rounded."""
    return np.clip(np.rint(np.asarray(image, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


# ITU-R BT.601 full-range YCbCr, the JPEG convention (and Pillow's "YCbCr" mode).
_RGB_TO_YCBCR = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float32
)
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR).astype(np.float32)


def rgb_to_ycbcr(image: np.ndarray) -> np.ndarray:
    """float RGB in [0, 1] -> float Y in [0, 1], Cb and Cr in [-0.5, 0.5]."""
    return image @ _RGB_TO_YCBCR.T


def ycbcr_to_rgb(image: np.ndarray) -> np.ndarray:
    """Inverse of ``rgb_to_ycbcr``, clipped to [0, 1]."""
    return np.clip(image @ _YCBCR_TO_RGB.T, 0.0, 1.0)


def transfer_luminance(styled: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The luminance (Y) of ``styled`` with the chroma (Cb, Cr) of ``content``; float images in [0, 1]."""
    combined = rgb_to_ycbcr(content)
    combined[..., 0] = rgb_to_ycbcr(styled)[..., 0]
    return ycbcr_to_rgb(combined)
