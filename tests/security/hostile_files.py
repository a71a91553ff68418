"""Hostile and unusual upload files, generated in memory (no fixture files)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from tests.support.images import image_array, jpeg_bytes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_from_rows(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG written by hand: lets a test declare any size and depth Pillow would not write."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows, 9))
        + png_chunk(b"IEND", b"")
    )


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """Huge declared dimensions, a few hundred bytes: one filter byte and zeros per row would follow."""
    return png_from_rows(width, height, 8, 2, b"\x00" * 1000)


def png_16bit_rgb(width: int = 48, height: int = 48) -> bytes:
    pixels = (image_array(width, height, seed=80).astype(np.uint16) * 257).astype(">u2")
    rows = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))
    return png_from_rows(width, height, 16, 2, rows)


def png_16bit_grey_gradient(width: int = 64, height: int = 64) -> bytes:
    grey = np.linspace(0, 65535, width * height).reshape(height, width).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    return buffer.getvalue()


def png_with_text_bomb() -> bytes:
    """A valid 32x32 PNG carrying a zTXt chunk that inflates to 20 MB (Pillow caps text chunks)."""
    valid = encode(Image.fromarray(image_array(32, 32, seed=81)), "PNG")
    inflated = zlib.compress(b"\x00" * 20_000_000, 9)
    text = png_chunk(b"zTXt", b"Comment\x00\x00" + inflated)
    return valid[:-12] + text + valid[-12:]  # before IEND


def cmyk_jpeg() -> bytes:
    return encode(Image.new("CMYK", (48, 48), (0, 255, 255, 0)), "JPEG")  # pure red in CMYK


def palette_png_with_transparency() -> bytes:
    """Palette image: left half colour 0 (fully transparent black), right half colour 1 (blue)."""
    image = Image.new("P", (48, 48), 0)
    image.putpalette([0, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    image.paste(1, (24, 0, 48, 48))
    image.info["transparency"] = 0
    return encode(image, "PNG", transparency=0)


def animated(image_format: str) -> bytes:
    """Two frames: red, then green."""
    frames = [Image.new("RGB", (48, 48), colour) for colour in ((255, 0, 0), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=image_format, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


TRUNCATED_JPEG = jpeg_bytes(64, 64, seed=82)[:600]
SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
    b'<script>alert(1)</script><rect width="64" height="64" fill="red"/></svg>'
)
HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
# Pillow can read EPS by running Ghostscript: the validator must never let it try.
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nnewpath 0 0 moveto 64 64 lineto stroke\nshowpage\n"
ICO = encode(Image.fromarray(image_array(32, 32, seed=83)), "ICO")
