"""Small generated test images (bytes), so tests need no fixture files."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def image_array(width: int = 64, height: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth colour gradient with seeded noise: uint8 HxWx3, different for each seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / max(width - 1, 1), y / max(height - 1, 1), np.full_like(x, seed % 7 / 7.0)], axis=-1)
    noisy = base * 200 + rng.integers(0, 55, size=(height, width, 3))
    return noisy.clip(0, 255).astype(np.uint8)


def encode(array: np.ndarray, image_format: str = "PNG", **save_options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format, **save_options)
    return buffer.getvalue()


def png_bytes(width: int = 64, height: int = 64, seed: int = 0) -> bytes:
    """A generated RGB PNG of the given size."""
    return encode(image_array(width, height, seed), "PNG")


def jpeg_bytes(width: int = 64, height: int = 64, seed: int = 0, **save_options: object) -> bytes:
    """A generated RGB JPEG of the given size (save_options: e.g. exif=...)."""
    return encode(image_array(width, height, seed), "JPEG", **save_options)


def flat_png_bytes(width: int, height: int) -> bytes:
    """A one-colour PNG: many pixels in few bytes (for pixel-limit tests)."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of encoded image bytes."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def image_format(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        return str(image.format)
