"""Any decoded Pillow image to 8-bit RGB, defined once for the engine and the web's upload check.

Pillow only (no NumPy, no TensorFlow), so the web process can import it, as it imports the option
schema: app/uploads.py re-encodes uploads with it, worker/engine/images.py decodes with it.

- Deeper-than-8-bit greyscale (16-bit PNG or TIFF, 32-bit integer, float) is scaled to 0..255, not
  clipped: Pillow's own convert() would turn most of a 16-bit picture white.
- Transparency (an alpha channel or a transparent palette entry) is composited onto white, as a
  browser shows it; transparent pixels often hold black.
"""

from __future__ import annotations

from PIL import Image

BACKGROUND = (255, 255, 255)
# Modes with an alpha channel (a transparent palette entry is handled apart).
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
DEEP_GREY_MODES = {"I", "F", *_SIXTEEN_BIT_MODES}


def to_rgb(image: Image.Image, grey_full_scale: float | None = None) -> Image.Image:
    """image as an RGB image (see the module's docstring). Raises ValueError for a mode Pillow cannot
    convert to RGB. grey_full_scale: deep greyscale's full scale (see grey_full_scale) when image is
    a strip of a larger picture, whose own values do not tell it."""
    if image.mode in DEEP_GREY_MODES:
        return deep_grey_to_8_bits(image, grey_full_scale).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def grey_full_scale(image: Image.Image) -> float:
    """The value that stands for white in a deep greyscale image (16-bit, 32-bit integer or float)."""
    if image.mode in _SIXTEEN_BIT_MODES:
        return 65535.0
    peak = float(image.getextrema()[1]) if image.width and image.height else 0.0
    if image.mode == "I":
        return 65535.0 if peak > 255 else 255.0  # 16-bit PNGs often open as "I"
    return 1.0 if peak <= 1.0 else 255.0  # "F": either [0, 1] data or already 0..255


def deep_grey_to_8_bits(image: Image.Image, full_scale: float | None = None) -> Image.Image:
    """16-bit, 32-bit integer and float greyscale as 8-bit greyscale ("L"), scaled to full range
    (full_scale: white's value; default: grey_full_scale(image))."""
    full_scale = grey_full_scale(image) if full_scale is None else full_scale
    factor = 255.0 / full_scale
    # F -> L truncates (and clips to 0..255): + 0.5 rounds to the nearest level instead.
    return image.convert("F").point(lambda value: value * factor + 0.5).convert("L")
