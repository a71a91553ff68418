"""A disk that fills during a job costs no finished work: a real worker on a 4 MiB tmpfs, filled
mid-job and then freed (mount -t tmpfs: the tests run as root; a loop device is not needed)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.images import png_bytes
from tests.support.stack import Stack, start_stack


@pytest.fixture(scope="module")
def small_disk_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("disk-full")
    mount_point = base / "storage"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], check=True)
    try:
        env = {"ATELIER_STORAGE_DIR": str(mount_point), "ATELIER_STORAGE_RETRY_SECONDS": "120"}
        with start_stack(base, env) as stack:
            yield stack
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path) -> Path:
    """Take every free byte of the file system under directory."""
    filler = directory / "filler"
    free = os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize
    with filler.open("wb") as out:
        try:
            out.write(b"\0" * free)
            out.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_then_freed_ends_in_the_result_without_recomputing(small_disk_stack: Stack) -> None:
    stack = small_disk_stack
    response = stack.submit(png_bytes(64, 64, seed=60), [png_bytes(64, 64, seed=61)], size=64, iterations=30)
    job_id = response.json()["id"]
    stack.wait_for(job_id, {"running"})
    filler = fill(stack.storage_dir)
    try:
        waiting = stack.status(job_id)
        deadline = time.monotonic() + 120
        while waiting["status"] == "running" and not waiting["storage_wait"] and time.monotonic() < deadline:
            time.sleep(0.05)
            waiting = stack.status(job_id)
        assert waiting is not None and waiting["status"] == "running", waiting
        assert waiting["storage_wait"] == "waiting for storage: no space left on device"
        with stack.client as client:
            page = client.get(f"/jobs/{job_id}").text
        assert "Waiting for storage: no space left on device." in page
    finally:
        filler.unlink()

    final = stack.wait_for(job_id, {"succeeded", "failed", "cancelled"}, timeout=60)

    assert final["status"] == "succeeded", final
    assert final["stats"]["steps"] == 30 and final["storage_wait"] is None
    log = stack.processes["worker"].tail(2000)
    assert log.count(f"job {job_id}: done after") == 1  # the engine ran once: no step was computed again
    assert f"job {job_id}: preview of step 5 not saved (the job goes on)" in log
    files = {path.name for path in (stack.storage_dir / "jobs" / job_id).iterdir()}
    assert files == {"content.png", "style-0.png", "result.png"}, files  # no checkpoint, no temp file left
