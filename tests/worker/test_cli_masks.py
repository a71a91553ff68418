"""``atelier stylize --mask``: one mask per style image, checked before any work, applied by the engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.engine.conftest import gradient, stripes
from tests.support.cli import atelier
from worker.engine.images import load_image, save_image


def _write_mask(path: Path, width: int, height: int, white_columns: slice) -> Path:
    mask = np.zeros((height, width), np.uint8)
    mask[:, white_columns] = 255
    Image.fromarray(mask, "L").save(path)
    return path


def test_a_mask_keeps_the_black_half_of_the_content(tmp_path: Path) -> None:
    content, style, output = tmp_path / "content.png", tmp_path / "style.png", tmp_path / "out.png"
    save_image(gradient(48, 48), content)
    save_image(stripes(48, 48), style)
    mask = _write_mask(tmp_path / "mask.png", 24, 24, slice(0, 12))  # same aspect, half the size: resized
    done = atelier(
        "stylize", content, style, "-o", output, "--mask", mask, "--size", "48", "--iterations", "10",
        "--style-weight", "10", "--weights", "random", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Mask 1 was 24x24 pixels; it was resized to the content's 48x48." in done.stderr
    result, original = load_image(output).astype(int), gradient(48, 48).astype(int)
    assert np.abs(result - original)[:, 26:].max() <= 3
    assert np.abs(result - original)[:, :22].mean() > 3


def test_mask_count_and_aspect_are_checked_at_once(tmp_path: Path) -> None:
    content, style, output = tmp_path / "content.png", tmp_path / "style.png", tmp_path / "out.png"
    save_image(gradient(48, 48), content)
    save_image(stripes(32, 32), style)
    square = _write_mask(tmp_path / "square.png", 48, 48, slice(0, 24))
    wide = _write_mask(tmp_path / "wide.png", 60, 48, slice(0, 24))
    common = ("--size", "48", "--iterations", "1", "--weights", "random")
    twice = atelier(
        "stylize", content, style, "-o", output, "--mask", square, "--mask", square, *common, cwd=tmp_path
    )
    assert twice.returncode == 1 and "mask: 2 mask(s) for 1 style image(s)" in twice.stderr
    skewed = atelier("stylize", content, style, "-o", output, "--mask", wide, *common, cwd=tmp_path)
    assert skewed.returncode == 1 and "aspect ratio differs" in skewed.stderr
    assert "random weights" not in twice.stderr + skewed.stderr  # refused before the model was built
    assert not output.exists()
