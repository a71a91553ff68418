"""``atelier stylize clip.mp4 style.jpg -o out.mp4``: a video through the command line (main() in this
process, tests/support/cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.engine.conftest import stripes
from tests.support.cli import atelier
from tests.support.clips import encode, pan, photo, streams
from worker.engine.images import save_image


@pytest.fixture
def clip_and_style(tmp_path: Path) -> tuple[Path, Path]:
    clip, style = tmp_path / "clip.mp4", tmp_path / "style.png"
    clip.write_bytes(encode(pan(photo(), 8, 36, 48), fps=8, audio_seconds=2.0))  # 1 s of video, 2 s of audio
    save_image(stripes(32, 32), style)
    return clip, style


def test_a_clip_is_stylised_at_the_asked_rate_with_its_audio_trimmed(
    tmp_path: Path, clip_and_style: tuple[Path, Path]
) -> None:
    clip, style = clip_and_style
    output = tmp_path / "out.mp4"
    done = atelier(
        "stylize", clip, style, "-o", output, "--size", "48", "--iterations", "6", "--frame-iterations", "2",
        "--fps", "4", "--weights", "random", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["frames"], summary["fps"], summary["codec"], summary["audio"]) == (
        4,
        4.0,
        "libx264",
        True,
    )
    found = streams(output.read_bytes())
    assert found["video"]["codec"] == "h264" and found["video"]["frames"] == 4 and found["video"]["fps"] == 4
    assert (found["video"]["width"], found["video"]["height"]) == (48, 36)
    assert found["audio"]["codec"] == "aac"
    assert 0.9 <= float(found["audio"]["seconds"]) <= 1.1  # trimmed to the 4 frames' second, not 2 s


def test_a_text_file_named_mp4_is_refused_in_one_line(tmp_path: Path) -> None:
    fake, style = tmp_path / "clip.mp4", tmp_path / "style.png"
    fake.write_text("not a video at all\n" * 20)
    save_image(stripes(32, 32), style)
    done = atelier("stylize", fake, style, "-o", tmp_path / "out.mp4", "--weights", "random", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"atelier: error: {fake}: the file is not a video (MP4, WebM, MOV or animated GIF)"
    ]
    assert not (tmp_path / "out.mp4").exists()
