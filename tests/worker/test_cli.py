"""The ``atelier`` command: files in, files and JSON out, one line on stderr when it cannot run.

main() runs in this process (tests/support/cli.py), as a process would run it; where only a process
shows the behaviour (the console script, its exit status and one line on stderr once TensorFlow has
loaded) the test runs the command as a process.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.engine.conftest import gradient, stripes
from tests.support.cli import Done, atelier, atelier_process
from worker.engine.images import save_image


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, Path]:
    content, style = tmp_path / "content.png", tmp_path / "style.jpg"
    save_image(gradient(48, 40), content)  # 40 wide, 48 high
    save_image(stripes(32, 32), style)
    return content, style


def test_json_run_prints_one_summary_and_writes_the_image(tmp_path: Path, images: tuple[Path, Path]) -> None:
    content, style = images
    output = tmp_path / "out.png"
    done = atelier(
        "stylize", content, style, "-o", output, "--size", "36", "--iterations", "4", "--weights", "random",
        "--init", "noise", "--tv-weight", "0", "--preview-every", "2", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # exactly one JSON document, nothing else on stdout
    assert done.stdout.count("\n") == 1
    assert set(summary) == {"output", "width", "height", "iterations", "seconds", "loss"}
    assert (summary["output"], summary["width"], summary["height"]) == (str(output), 30, 36)
    assert summary["iterations"] == 4 and summary["seconds"] > 0
    for stage in ("initial", "final"):
        assert set(summary["loss"][stage]) == {"total", "content", "style", "tv"}
    assert summary["loss"]["final"]["total"] < summary["loss"]["initial"]["total"]
    with Image.open(output) as written:
        assert (written.format, written.size) == ("PNG", (30, 36))
    assert (tmp_path / "out_0002.png").is_file() and (tmp_path / "out_0004.png").is_file()
    assert "random weights" in done.stderr  # the warning that the output is not art
    assert "Traceback" not in done.stderr


def _assert_one_line_failure(done: Done, code: int, expected: str) -> None:
    assert done.returncode == code, done.stderr
    assert done.stderr.count("\n") == 1 and expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_missing_file_fails_with_one_line(tmp_path: Path, images: tuple[Path, Path]) -> None:
    _, style = images
    done = atelier("stylize", tmp_path / "absent.png", style, "-o", tmp_path / "out.png", cwd=tmp_path)
    _assert_one_line_failure(done, 1, "absent.png: no such file")


def test_corrupt_file_fails_with_one_line(tmp_path: Path, images: tuple[Path, Path]) -> None:
    content, _ = images
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    done = atelier("stylize", content, corrupt, "-o", tmp_path / "out.png", cwd=tmp_path)
    _assert_one_line_failure(done, 1, "corrupt.png")


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--iterations", "0"], "iterations must be >= 1"),
        (["--optimizer", "sgd"], "invalid choice: 'sgd'"),
        (["--style-blend", "a,b"], "comma-separated numbers"),
        (["--style-blend", "1,2"], "style_blend: has 2 weights but 1 style"),
    ],
)
def test_bad_option_fails_with_one_line(
    tmp_path: Path, images: tuple[Path, Path], option: list[str], expected: str
) -> None:
    content, style = images
    done = atelier(
        "stylize", content, style, "-o", tmp_path / "out.png", "--weights", "random", *option, cwd=tmp_path
    )
    _assert_one_line_failure(done, 2, expected)
    assert not (tmp_path / "out.png").exists()


@pytest.mark.processes
def test_missing_weights_file_fails_with_one_line(tmp_path: Path, images: tuple[Path, Path]) -> None:
    """As a process: once TensorFlow has loaded (its banner silenced), nothing but the one line."""
    content, style = images
    done = atelier_process(
        "stylize", content, style, "-o", tmp_path / "out.png", "--weights", tmp_path / "vgg.h5", cwd=tmp_path
    )
    _assert_one_line_failure(done, 1, "does not exist")


def test_max_tile_gives_the_untiled_picture(tmp_path: Path, images: tuple[Path, Path]) -> None:
    """--max-tile 100 evaluates a 224x48 image by 2 tiles of 208x48 (each with 96 px of context): the
    same loss and gradient, so the same picture as --max-tile 0, but for float32 rounding of the
    summed tiles (measured: 0.0013 levels on average,
    0.03% of values more than 1 level apart)."""
    _, style = images
    content = tmp_path / "wide.png"
    save_image(gradient(48, 224), content)
    pictures = []
    for side in ("0", "100"):
        output = tmp_path / f"tile-{side}.png"
        done = atelier(
            "-v", "stylize", content, style, "-o", output, "--size", "224", "--style-scale", "0.5",
            "--iterations", "2", "--weights", "random", "--precision", "float32", "--max-tile", side,
            cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert ("in 2 tile(s)" in done.stderr) == (side != "0"), done.stderr  # the engine says how it tiled
        pictures.append(np.asarray(Image.open(output), dtype=np.int16))
    difference = np.abs(pictures[0] - pictures[1])
    assert difference.mean() < 0.05 and (difference > 1).mean() < 0.01


def test_a_negative_max_tile_is_a_usage_error(tmp_path: Path, images: tuple[Path, Path]) -> None:
    content, style = images
    done = atelier("stylize", content, style, "-o", tmp_path / "x.png", "--max-tile", "-5", cwd=tmp_path)
    assert done.returncode == 2 and "--max-tile" in done.stderr and "Traceback" not in done.stderr


def test_styles_lists_the_library_with_an_operators_painting(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    save_image(stripes(40, 40), library / "stripes.png")
    painting = {"id": "house-stripes", "title": "Stripes", "artist": "The House Painter", "year": "2026",
                "licence": "CC0", "source": "made for the tests", "file": "stripes.png"}  # fmt: skip
    (library / "library.json").write_text(json.dumps({"styles": [painting]}))
    done = atelier("styles", cwd=tmp_path, env={"ATELIER_STYLE_LIBRARY_DIR": str(library)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 7
    assert lines[0].split()[0] == "van-gogh-starry-night"
    assert "The Great Wave off Kanagawa, Katsushika Hokusai, c. 1831" in done.stdout
    assert lines[-1].split()[0] == "house-stripes" and "The House Painter, 2026 (CC0)" in lines[-1]


def test_stylize_with_a_library_painting_and_a_style_file(tmp_path: Path, images: tuple[Path, Path]) -> None:
    content, style = images
    output = tmp_path / "out.png"
    done = atelier(
        "stylize", content, style, "--style-id", "van-gogh-starry-night", "--style-blend", "0.3,0.7",
        "-o", output, "--size", "32", "--iterations", "3", "--weights", "random", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["iterations"] == 3
    with Image.open(output) as written:
        assert written.size == (27, 32)


def test_an_unknown_style_id_fails_with_one_line(tmp_path: Path, images: tuple[Path, Path]) -> None:
    content, _ = images
    done = atelier("stylize", content, "--style-id", "mona-lisa", "-o", tmp_path / "out.png", cwd=tmp_path)
    _assert_one_line_failure(done, 2, "no painting 'mona-lisa' in the library")
