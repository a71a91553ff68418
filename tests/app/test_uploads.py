"""clean_image(): decoded by Pillow, limits enforced, EXIF orientation applied, metadata dropped."""

from __future__ import annotations

import io

import pytest
from PIL import Image, PngImagePlugin

from app.uploads import UploadRejected, clean_image
from tests.support.images import encode, flat_png_bytes, image_array, png_bytes

LIMITS = {"max_pixels": 1_000_000, "min_side": 16}


def _exif_with_orientation(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    exif[0x010F] = "Camera maker that should not leak"  # Make
    return exif


def test_jpeg_is_rotated_by_its_exif_orientation_and_stored_as_plain_png() -> None:
    # Orientation 6: the camera was turned; the picture is shown rotated 90 degrees.
    upload = encode(image_array(64, 32), "JPEG", exif=_exif_with_orientation(6).tobytes())

    clean = clean_image(upload, **LIMITS)

    assert (clean.width, clean.height) == (32, 64)
    with Image.open(io.BytesIO(clean.png)) as stored:
        assert stored.format == "PNG" and stored.mode == "RGB" and stored.size == (32, 64)
        assert not stored.getexif()
        assert "exif" not in stored.info


def test_png_text_chunks_and_alpha_are_not_kept() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "gps 51.5,-0.1")
    rgba = Image.new("RGBA", (40, 40), (255, 0, 0, 0))
    buffer = io.BytesIO()
    rgba.save(buffer, format="PNG", pnginfo=info)

    clean = clean_image(buffer.getvalue(), **LIMITS)

    with Image.open(io.BytesIO(clean.png)) as stored:
        assert stored.mode == "RGB"
        assert "Comment" not in stored.info
        assert stored.getpixel((0, 0)) == (255, 255, 255)  # transparent onto white


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GIF89a but no more", 415),
        (b"just text", 415),
        (png_bytes(64, 64)[:200], 422),
        (flat_png_bytes(1001, 1000), 413),
        (png_bytes(15, 64), 422),
    ],
)
def test_unusable_images_are_rejected_with_a_fitting_status(data: bytes, status: int) -> None:
    with pytest.raises(UploadRejected) as raised:
        clean_image(data, **LIMITS)
    assert raised.value.status_code == status


def test_formats_that_run_external_programs_are_refused() -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n"
    with pytest.raises(UploadRejected) as raised:
        clean_image(eps, **LIMITS)
    assert raised.value.status_code == 415
