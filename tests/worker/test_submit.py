"""`atelier submit` against a real stack, run as a user runs it (a process, its output captured):
it follows the job with a progress bar and writes the result; a job that does not succeed exits 1
with the server's message; Ctrl-C offers to cancel the job on the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.images import image_size, png_bytes
from tests.support.stack import REPO_ROOT, Stack


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, Path]:
    content, style = tmp_path / "photo.png", tmp_path / "style.png"
    content.write_bytes(png_bytes(48, 36, seed=21))
    style.write_bytes(png_bytes(32, 32, seed=22))
    return content, style


def atelier_submit(stack: Stack, *args: str | Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    # A suite run in the background (nohup, `make test &`) ignores SIGINT, and a child inherits an
    # ignored signal: its Ctrl-C would do nothing. A handler is reset to the default at exec instead.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "submit", "--server", stack.base_url, *map(str, args)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)


def test_submit_wait_follows_the_job_and_writes_the_result(
    stack: Stack, images: tuple[Path, Path], tmp_path: Path
) -> None:
    output = tmp_path / "out.png"
    process = atelier_submit(
        stack, *images, "--size", "32", "--iterations", "30", "--init", "noise", "--wait", "-o", output
    )
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 0, stderr
    assert image_size(output.read_bytes()) == (32, 24)
    assert stdout.startswith(f"wrote {output} (30 steps")
    job_id = stderr.split("atelier: job ", 1)[1].split(" ", 1)[0]
    assert stack.status(job_id)["options"]["init"] == "noise"  # the stylize flags, sent as the API's fields
    assert "30/30" in stderr and "loss=" in stderr  # the tqdm bar: steps of iterations, the loss
    assert "succeeded" in stderr


def test_submit_paints_with_a_library_painting_after_the_style_files(
    stack: Stack, images: tuple[Path, Path], tmp_path: Path
) -> None:
    content, style = images
    process = atelier_submit(
        stack, content, style, "--style-id", "hokusai-great-wave", "--size", "32", "--iterations", "2",
        "--style-blend", "0.5,0.5", "--wait", "-o", tmp_path / "out.png", "--quiet",
    )  # fmt: skip
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 0, stderr
    job_id = stderr.split("atelier: job ", 1)[1].split(" ", 1)[0]
    credits = stack.status(job_id)["style_credits"]
    assert credits[0] is None and credits[1]["title"] == "The Great Wave off Kanagawa"  # files, then ids


def test_a_job_that_does_not_succeed_exits_1_with_the_servers_message(
    stack: Stack, images: tuple[Path, Path], tmp_path: Path
) -> None:
    process = atelier_submit(
        stack, *images, "--size", "32", "--iterations", "2000", "--quiet", "-o", tmp_path / "o.jpg"
    )
    job_id = _job_id_from(process)
    stack.wait_for(job_id, {"running"})
    stack.cancel_in_store(job_id)  # as another client, or an operator, would
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 1
    assert f"atelier: error: job {job_id} cancelled: cancelled after" in stderr
    assert not (tmp_path / "o.jpg").exists()


def test_ctrl_c_offers_to_cancel_the_job_on_the_server(stack: Stack, images: tuple[Path, Path]) -> None:
    process = atelier_submit(stack, *images, "--size", "32", "--iterations", "2000", "--wait")
    job_id = _job_id_from(process)
    stack.wait_for(job_id, {"running"})
    time.sleep(0.5)  # the command is reading the event stream
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate("y\n", timeout=60)

    assert process.returncode == 130
    assert f"cancel job {job_id} on the server? [y/N]" in stderr
    assert stack.wait_for(job_id, {"cancelled", "succeeded", "failed"}, timeout=30)["status"] == "cancelled"


def test_a_refused_submission_exits_1_with_the_servers_detail(
    stack: Stack, images: tuple[Path, Path]
) -> None:
    process = atelier_submit(stack, *images, "--size", "99999")
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 1
    assert stderr.startswith("atelier: error: the server refused (422): size: must be at most")


def _job_id_from(process: subprocess.Popen[str]) -> str:
    """The job id from the command's first line on stderr ("atelier: job ID queued: URL")."""
    assert process.stderr is not None
    line = process.stderr.readline()
    assert line.startswith("atelier: job "), line
    return line.split()[2]


def test_submit_a_batch_of_a_folder_writes_every_result_to_the_out_dir(stack: Stack, tmp_path: Path) -> None:
    photos, paints, out = tmp_path / "photos", tmp_path / "paints", tmp_path / "results"
    photos.mkdir()
    paints.mkdir()
    for index in range(2):
        (photos / f"photo{index}.png").write_bytes(png_bytes(48, 36, seed=140 + index))
        (paints / f"paint{index}.png").write_bytes(png_bytes(32, 32, seed=150 + index))
    (photos / "notes.txt").write_text("not an image: a folder gives its images only")

    process = atelier_submit(
        stack, "--contents", photos, "--styles", paints, "--size", "32", "--iterations", "5", "--out-dir", out
    )
    stdout, stderr = process.communicate(timeout=180)

    assert process.returncode == 0, stderr
    assert stderr.startswith("atelier: batch ") and "queued, 4 job(s)" in stderr
    assert "4/4" in stderr  # the bar counts the batch's jobs
    names = sorted(path.name for path in out.iterdir())
    assert names == ["photo0__paint0.png", "photo0__paint1.png", "photo1__paint0.png", "photo1__paint1.png"]
    assert all(image_size((out / name).read_bytes()) == (32, 24) for name in names)
    assert stdout.count("wrote ") == 4
