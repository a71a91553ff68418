"""Image decoding, conversion, resizing and saving (worker.engine.images)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spec.errors import EngineError, ImageError
from tests.engine.conftest import gradient, noise
from worker.engine.images import (
    encode_image,
    load_image,
    resize_to_longest,
    resize_to_max,
    save_image,
    to_float,
    to_uint8,
)


def _png(image: Image.Image, **save_options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **save_options)
    return buffer.getvalue()


def test_loads_a_path_bytes_and_a_file_object_alike(tmp_path: Path) -> None:
    expected = gradient(20, 30)
    path = tmp_path / "content.png"
    save_image(expected, path)
    with path.open("rb") as stream:
        from_stream = load_image(stream)
    for loaded in (load_image(path), load_image(str(path)), load_image(path.read_bytes()), from_stream):
        assert loaded.dtype == np.uint8
        np.testing.assert_array_equal(loaded, expected)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(path)
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")


def test_truncated_png_is_refused() -> None:
    data = encode_image(noise(64, 64))
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])


def test_undecodable_data_is_refused() -> None:
    with pytest.raises(ImageError, match="not an image format"):
        load_image(b"this is a text file, not a picture")


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "absent.png")


def test_too_small_image_is_refused() -> None:
    with pytest.raises(ImageError, match=r"1x1 pixels.*at least 16"):
        load_image(_png(Image.new("RGB", (1, 1))))
    assert load_image(_png(Image.new("RGB", (4, 4))), min_side=4).shape == (4, 4, 3)


def test_engine_errors_are_value_errors() -> None:
    assert issubclass(ImageError, EngineError)
    assert issubclass(EngineError, ValueError)


def test_greyscale_becomes_grey_rgb() -> None:
    loaded = load_image(_png(Image.new("L", (16, 16), 100)))
    assert loaded.shape == (16, 16, 3)
    assert (loaded == 100).all()


def test_transparency_is_composited_on_white() -> None:
    see_through = load_image(_png(Image.new("LA", (16, 16), (0, 0))))
    assert (see_through == 255).all()
    half_red = load_image(_png(Image.new("RGBA", (16, 16), (255, 0, 0, 128))))
    np.testing.assert_allclose(half_red[0, 0], [255, 127, 127], atol=1)


def test_palette_with_transparent_index_is_composited_on_white() -> None:
    palette = Image.new("P", (16, 16), 0)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.paste(1, (0, 0, 8, 16))  # left half: palette entry 1 (green), right half: entry 0
    loaded = load_image(_png(palette, transparency=0))
    assert tuple(loaded[0, 0]) == (10, 200, 30)
    assert tuple(loaded[0, 15]) == (255, 255, 255)


def test_cmyk_is_converted_to_rgb() -> None:
    buffer = io.BytesIO()
    Image.new("CMYK", (16, 16), (255, 0, 0, 0)).save(buffer, format="JPEG", quality=100)
    loaded = load_image(buffer.getvalue())
    np.testing.assert_allclose(loaded[8, 8], [0, 255, 255], atol=3)  # pure cyan


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    deep = Image.fromarray(np.full((16, 16), 32896, dtype=np.uint16))  # 32896 / 65535 = 128 / 255
    assert deep.mode.startswith("I;16")
    loaded = load_image(_png(deep))
    assert (loaded == 128).all()


def test_float_greyscale_is_scaled() -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16), 0.5, dtype=np.float32)).save(buffer, format="TIFF")
    assert (load_image(buffer.getvalue()) == 128).all()


def test_exif_orientation_is_applied() -> None:
    stored = np.zeros((30, 20, 3), dtype=np.uint8)  # 20 wide, 30 high as stored
    stored[0, 0] = (255, 0, 0)  # a red marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    loaded = load_image(_png(Image.fromarray(stored), exif=exif))
    assert loaded.shape == (20, 30, 3)  # displayed 30 wide, 20 high
    assert tuple(loaded[0, 29]) == (255, 0, 0)  # the marker is now top-right


def test_resize_to_max_scales_down_only() -> None:
    image = gradient(40, 80)
    assert resize_to_max(image, 32).shape == (16, 32, 3)
    assert resize_to_max(image, 512) is image
    assert resize_to_longest(image, 160).shape == (80, 160, 3)


def test_save_image_picks_the_format_from_the_extension(tmp_path: Path) -> None:
    image = gradient(16, 24)
    for name, magic in [("out.png", b"\x89PNG"), ("out.jpg", b"\xff\xd8"), ("out.JPEG", b"\xff\xd8")]:
        assert save_image(image, tmp_path / name).read_bytes().startswith(magic)
    np.testing.assert_array_equal(load_image(tmp_path / "out.png"), image)
    with pytest.raises(ImageError, match="unsupported output extension"):
        save_image(image, tmp_path / "out.gif")


def test_float_round_trip() -> None:
    image = noise(16, 16)
    floats = to_float(image)
    assert floats.dtype == np.float32 and floats.min() >= 0.0 and floats.max() <= 1.0
    np.testing.assert_array_equal(to_uint8(floats), image)
