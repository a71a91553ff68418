"""Storage faults during a job: what is retried, what is kept, and the sentences people read.

- StorageWaiter.call: one storage call, retried with backoff while it fails for a reason that passes
  (a full disk, an S3 5xx or throttling answer), up to ATELIER_STORAGE_RETRY_SECONDS; meanwhile the job
  record says why (JobStore.set_storage_wait: "waiting for storage: no space left on device").
- store_result: the finished image is never thrown away. If the result cannot be written it is kept in
  memory and in the checkpoint (which makes room: the old checkpoint goes first where both do not fit),
  and the checkpoint then becomes the result (a rename on a local disk: no free space needed).
- read_upload: a stored upload that is gone, or unreadable, fails the job with a sentence saying so.
- describe_failure: the sentence for other errors a job can meet (storage, memory), or None.
See docs/reliability.md ("Resource faults").
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from redis.exceptions import RedisError

from core.jobs import JobStore
from core.storage import (
    Storage,
    StorageError,
    StorageProblem,
    checkpoint_key,
    result_key,
    storage_problem,
)
from worker.recovery import patiently

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)
T = TypeVar("T")

BACKOFF_FIRST_SECONDS = 0.5  # the first retry; each next waits twice as long, up to the cap
BACKOFF_MAX_SECONDS = 15.0  # so storage that came back is noticed within this
INTERRUPT_CHECK_SECONDS = 0.25  # a cancel, a lost lease or a shutdown ends the wait this soon


class JobFailure(Exception):
    """The job cannot go on; str(error) says why, for the person who submitted it."""


class StorageGaveUp(Exception):
    """A storage call still failed for a passing reason when the time to retry it ran out."""

    def __init__(self, problem: StorageProblem, seconds: float) -> None:
        super().__init__(f"{problem.reason} (retried for {seconds:.0f} s)")
        self.problem = problem
        self.seconds = seconds


class WaitInterrupted(Exception):
    """The storage wait ended early: ``kind`` is "cancelled", "lost" (another worker holds the job)
    or "preempted" (this worker is shutting down)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class StorageWaiter:
    """Retries a storage call of one job for up to ``retry_seconds`` (ATELIER_STORAGE_RETRY_SECONDS),
    never past ``deadline`` (time.monotonic(): the job's time limit); ``interrupted()`` returns a
    WaitInterrupted kind, or None to go on waiting."""

    def __init__(
        self,
        job_id: str,
        store: JobStore,
        retry_seconds: float,
        deadline: float,
        interrupted: Callable[[], str | None],
    ) -> None:
        self.job_id = job_id
        self.store = store
        self.retry_seconds = retry_seconds
        self.deadline = deadline
        self.interrupted = interrupted
        self.waiting = False  # the record says the job waits for storage

    def call(self, what: str, attempt: Callable[[], T]) -> T:
        """attempt(), retried while it raises a transient storage problem. A permanent one (or any
        other error, FileNotFoundError included) is raised as it is; StorageGaveUp when time runs out."""
        started, delay = time.monotonic(), BACKOFF_FIRST_SECONDS
        until = min(started + self.retry_seconds, self.deadline)
        while True:
            try:
                result = attempt()
            except Exception as error:
                problem = storage_problem(error)
                if problem is None or not problem.transient:
                    raise
                if time.monotonic() + delay > until:
                    self._done_waiting()
                    raise StorageGaveUp(problem, time.monotonic() - started) from error
                self._show(what, problem, error)
                self._sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_SECONDS)
                continue
            self._done_waiting()
            return result

    def _show(self, what: str, problem: StorageProblem, error: Exception) -> None:
        logger.warning("job %s: cannot %s, retrying: %s", self.job_id, what, error)
        if not self.waiting:
            self.waiting = True
            self._record(f"waiting for storage: {problem.reason}")

    def _done_waiting(self) -> None:
        if self.waiting:
            self.waiting = False
            self._record(None)
            logger.info("job %s: storage works again", self.job_id)

    def _record(self, reason: str | None) -> None:
        try:
            self.store.set_storage_wait(self.job_id, reason)
        except RedisError as error:  # advisory, like progress: the wait itself goes on
            logger.warning("job %s: storage wait not recorded, Redis down: %s", self.job_id, error)

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            kind = self.interrupted()
            if kind is not None:
                self._done_waiting()
                raise WaitInterrupted(kind)
            time.sleep(min(left, INTERRUPT_CHECK_SECONDS))


def read_upload(storage: Storage, waiter: StorageWaiter, key: str, what: str) -> np.ndarray:
    """The stored upload ``what`` ("content image", "style image 2", ...) as an image; JobFailure with
    a sentence when it is gone, damaged, or storage cannot give it back."""
    from spec.errors import ImageError
    from worker.engine.images import load_image

    try:
        data = waiter.call(f"read the {what}", lambda: storage.read_bytes(key))
    except FileNotFoundError as error:
        raise JobFailure(f"the uploaded {what} is no longer in storage (deleted or expired)") from error
    except StorageGaveUp as error:
        raise JobFailure(f"the uploaded {what} could not be read from storage: {error}") from error
    except OSError as error:
        problem = storage_problem(error)
        reason = problem.reason if problem is not None else str(error)
        raise JobFailure(f"the uploaded {what} could not be read from storage: {reason}") from error
    try:
        return load_image(data)
    except ImageError as error:
        raise JobFailure(f"the uploaded {what} is damaged in storage and cannot be read ({error})") from error


def upload_names(style_count: int) -> tuple[list[str], list[str]]:
    """How people call each style image and each mask: "style image" alone, else numbered from 1."""
    if style_count == 1:
        return ["style image"], ["mask of the style image"]
    styles = [f"style image {number}" for number in range(1, style_count + 1)]
    return styles, [f"mask of style image {number}" for number in range(1, style_count + 1)]


class ResultStore:
    """Stores one job's finished image, keeping it (in memory and in the checkpoint) until it is.

    ``kept``: the checkpoint holds this image (JobStore.set_checkpoint(final=True)), so a retried or
    redelivered job stores it without running a step again (store_kept).
    """

    def __init__(self, job_id: str, store: JobStore, storage: Storage, waiter: StorageWaiter) -> None:
        self.job_id = job_id
        self.store = store
        self.storage = storage
        self.waiter = waiter
        self.kept = False

    def store_result(self, png: bytes, steps: int) -> None:
        """Write the result; raises StorageGaveUp (time ran out), WaitInterrupted, or the storage
        error of a problem that does not pass (access denied)."""
        self.waiter.call("store the result", lambda: self._one_try(png, steps))

    def _one_try(self, png: bytes, steps: int) -> None:
        if not self.kept:
            try:
                self.storage.write_bytes(result_key(self.job_id), png)
                return
            except OSError as error:
                if storage_problem(error) is None:
                    raise
                logger.warning(
                    "job %s: result not stored (%s); keeping it in the checkpoint", self.job_id, error
                )
            self.keep(png, steps)  # raises when even that fails: the image stays in memory only
        try:
            self.storage.move(checkpoint_key(self.job_id), result_key(self.job_id))
        except FileNotFoundError as error:  # somebody removed the checkpoint: write from memory next
            self.kept = False
            reason = "the image kept in the checkpoint was removed from storage"
            raise StorageError(str(error), reason=reason, transient=True) from error

    def keep(self, png: bytes, steps: int) -> None:
        """Put the finished image in the checkpoint (replacing the old one, which makes room for it on
        a full disk), then record that the checkpoint is the result."""
        self.storage.replace_bytes(checkpoint_key(self.job_id), png)
        patiently(
            self.job_id,
            "record the kept result",
            lambda: self.store.set_checkpoint(self.job_id, steps, final=True),
        )
        self.kept = True
        logger.info("job %s: the finished image (step %d) is kept in the checkpoint", self.job_id, steps)

    def keep_once(self, png: bytes, steps: int) -> bool:
        """keep(), tried once (before a hand-back); False, logged, when storage refuses."""
        if self.kept:
            return True
        try:
            self.keep(png, steps)
        except OSError as error:
            logger.warning("job %s: the finished image could not be kept: %s", self.job_id, error)
            return False
        return True

    def store_kept(self) -> bool:
        """The job was retried or redelivered after its finished image was kept in the checkpoint:
        make that the result. False when neither it nor a result is in storage (the job runs again)."""
        self.kept = True
        try:
            self.waiter.call("store the kept result", lambda: self.storage.move(
                checkpoint_key(self.job_id), result_key(self.job_id)
            ))  # fmt: skip
        except FileNotFoundError:
            try:  # moved by the run before, which stopped before recording the job as finished
                self.waiter.call(
                    "check for the result", lambda: self.storage.read_bytes(result_key(self.job_id))
                )
            except FileNotFoundError:
                logger.warning(
                    "job %s: its kept result is missing from storage; running it again", self.job_id
                )
                return False
        return True


def result_not_stored(error: BaseException, kept: bool, earlier_checkpoint: int) -> str:
    """The failure message of a job whose result storage refused: what happened, what is kept."""
    if isinstance(error, StorageGaveUp):
        reason = str(error)
    else:
        problem = storage_problem(error)
        reason = problem.reason if problem is not None else str(error)
    if kept:
        what_now = "the finished image is kept, so retrying the job stores it without running a step again"
    elif earlier_checkpoint > 0:
        what_now = f"retrying the job resumes from its checkpoint of step {earlier_checkpoint}"
    else:
        what_now = "no copy of the image could be kept, so retrying the job runs it again"
    return f"the result could not be stored: {reason}; {what_now}"


def describe_failure(error: BaseException) -> str | None:
    """A sentence for an error a job can meet through no fault of its own (storage, memory), or None
    for one that is a bug (the task then logs its traceback and reports an internal error)."""
    if isinstance(error, JobFailure):
        return str(error)
    if isinstance(error, StorageGaveUp):
        return f"storage failed: {error}"
    if isinstance(error, MemoryError) or _is_tensorflow_out_of_memory(error):
        return "the worker ran out of memory for this job; try a smaller size or fewer style images"
    problem = storage_problem(error) if isinstance(error, OSError) else None
    if problem is not None:
        return f"storage failed: {problem.reason}"
    return None


def _is_tensorflow_out_of_memory(error: BaseException) -> bool:
    """TensorFlow's ResourceExhaustedError, checked without importing TensorFlow here."""
    tf_errors = sys.modules.get("tensorflow.python.framework.errors_impl")
    return tf_errors is not None and isinstance(error, tf_errors.ResourceExhaustedError)
