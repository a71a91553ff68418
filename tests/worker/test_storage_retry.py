"""The storage wait of a job, in process: what is retried, what the record says, what ends it."""

from __future__ import annotations

import errno
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.jobs import JobStore, new_job_id
from core.storage import LocalStorage, checkpoint_key
from tests.support.scratch import scratch_job_store
from tests.support.stack import RedisServer
from worker.storage_retry import StorageGaveUp, StorageWaiter, WaitInterrupted, result_not_stored


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[JobStore]:
    yield from scratch_job_store(redis_server, 9)


def failing(times: int, error: OSError) -> tuple[list[int], object]:
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "stored"

    return calls, attempt


def test_a_full_disk_is_retried_the_record_says_so_and_the_wait_ends_when_it_works(store: JobStore) -> None:
    job_id = new_job_id()
    store.create(job_id, {"iterations": 1}, 1)
    seen: list[str | None] = []

    def interrupted() -> None:
        seen.append(store.get(job_id).storage_wait)  # type: ignore[union-attr]
        return None

    calls, attempt = failing(2, OSError(errno.ENOSPC, "No space left on device"))
    waiter = StorageWaiter(job_id, store, 30, time.monotonic() + 60, interrupted)

    assert waiter.call("store the result", attempt) == "stored"  # type: ignore[arg-type]
    assert len(calls) == 3
    assert "waiting for storage: no space left on device" in seen
    assert store.get(job_id).storage_wait is None  # type: ignore[union-attr]


def test_the_wait_gives_up_after_the_retry_time_naming_the_problem(store: JobStore) -> None:
    job_id = new_job_id()
    store.create(job_id, {"iterations": 1}, 1)
    _, attempt = failing(1000, OSError(errno.ENOSPC, "No space left on device"))
    waiter = StorageWaiter(job_id, store, 1.0, time.monotonic() + 60, lambda: None)

    with pytest.raises(StorageGaveUp) as gave_up:
        waiter.call("store the result", attempt)  # type: ignore[arg-type]

    message = result_not_stored(gave_up.value, kept=True, earlier_checkpoint=0)
    assert message.startswith("the result could not be stored: no space left on device (retried for ")
    assert message.endswith(
        "the finished image is kept, so retrying the job stores it without running a step again"
    )
    assert store.get(job_id).storage_wait is None  # type: ignore[union-attr]


def test_a_problem_that_does_not_pass_is_raised_at_once(store: JobStore) -> None:
    calls, attempt = failing(1000, PermissionError(errno.EACCES, "Permission denied"))
    waiter = StorageWaiter(new_job_id(), store, 30, time.monotonic() + 60, lambda: None)

    with pytest.raises(PermissionError):
        waiter.call("store the result", attempt)  # type: ignore[arg-type]
    assert len(calls) == 1


def test_a_cancel_ends_the_wait(store: JobStore) -> None:
    _, attempt = failing(1000, OSError(errno.ENOSPC, "No space left on device"))
    job_id = new_job_id()
    store.create(job_id, {"iterations": 1}, 1)
    waiter = StorageWaiter(job_id, store, 30, time.monotonic() + 60, lambda: "cancelled")

    started = time.monotonic()
    with pytest.raises(WaitInterrupted, match="cancelled"):
        waiter.call("store the result", attempt)  # type: ignore[arg-type]
    assert time.monotonic() - started < 2


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(tmp_path)], check=True)
    try:
        yield tmp_path
    finally:
        subprocess.run(["umount", "-l", str(tmp_path)], check=True)


def test_a_checkpoint_replaced_on_a_nearly_full_disk_uses_the_old_ones_space(small_disk: Path) -> None:
    storage = LocalStorage(small_disk)
    job_id = new_job_id()
    storage.write_bytes(checkpoint_key(job_id), b"a" * 400_000)
    (small_disk / "filler").write_bytes(
        b"\0" * 500_000
    )  # ~150 KB left: the new one fits only in the old's place

    with pytest.raises(OSError):  # what write_bytes does: both at once do not fit
        storage.write_bytes(checkpoint_key(job_id), b"b" * 400_000)
    storage.replace_bytes(checkpoint_key(job_id), b"b" * 400_000)

    assert storage.read_bytes(checkpoint_key(job_id)) == b"b" * 400_000
    assert sorted(path.name for path in (small_disk / "jobs" / job_id).iterdir()) == ["checkpoint.png"]
    with pytest.raises(OSError, match="No space"):  # never given up when even then it would not fit
        storage.replace_bytes(checkpoint_key(job_id), b"c" * 900_000)
    assert storage.read_bytes(checkpoint_key(job_id)) == b"b" * 400_000
