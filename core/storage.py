"""Storage of job files: every path (or object key) Atelier uses lives in this module.

Callers speak in string keys and bytes only, never in local paths, so a second backend (S3) can
sit behind the same interface. Keys are built here from validated job ids; nothing a user typed
(file names included) ever becomes part of a key. Used by web and worker alike: no FastAPI import.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.jobs import is_job_id
from core.settings import Settings, get_settings

_KEY = re.compile(r"[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*")
HEALTH_KEY = "health/probe"


def _job_prefix(job_id: str) -> str:
    if not is_job_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return f"jobs/{job_id}"


def content_key(job_id: str) -> str:
    """The content image, re-encoded PNG."""
    return f"{_job_prefix(job_id)}/content.png"


def style_key(job_id: str, index: int) -> str:
    """Style image number index (0-based), re-encoded PNG."""
    if not 0 <= index < 100:
        raise ValueError(f"style index out of range: {index}")
    return f"{_job_prefix(job_id)}/style-{index}.png"


def mask_key(job_id: str, index: int) -> str:
    """The mask of style image number index (0-based), greyscale PNG at the content's size."""
    if not 0 <= index < 100:
        raise ValueError(f"mask index out of range: {index}")
    return f"{_job_prefix(job_id)}/mask-{index}.png"


def preview_key(job_id: str) -> str:
    """The latest live preview, JPEG."""
    return f"{_job_prefix(job_id)}/preview.jpg"


def result_key(job_id: str) -> str:
    """The final (or, after a time limit, partial) image, PNG."""
    return f"{_job_prefix(job_id)}/result.png"


def checkpoint_key(job_id: str) -> str:
    """The running job's latest checkpoint image (PNG, lossless), deleted when the job ends."""
    return f"{_job_prefix(job_id)}/checkpoint.png"


# A video job (docs/video.md): its source clip, each finished frame, and the results made from them.
def video_source_key(job_id: str) -> str:
    """The uploaded clip as it came (probed by the web, decoded by the worker)."""
    return f"{_job_prefix(job_id)}/source.video"


def frame_key(job_id: str, frame: int) -> str:
    """Finished frame number ``frame`` (1-based) of a video job, PNG."""
    if not 1 <= frame <= 100_000:
        raise ValueError(f"frame number out of range: {frame}")
    return f"{_job_prefix(job_id)}/frames/frame-{frame:05d}.png"


def video_result_key(job_id: str, suffix: str) -> str:
    """The result video: ``suffix`` .mp4 (H.264) or .webm (VP9)."""
    if suffix not in (".mp4", ".webm"):
        raise ValueError(f"not a result video suffix: {suffix!r}")
    return f"{_job_prefix(job_id)}/result{suffix}"


def video_input_key(job_id: str, suffix: str) -> str:
    """The input clip at the result's rate and size (the job page's before/after), as the result is."""
    return video_result_key(job_id, suffix).replace("/result", "/input", 1)


def animated_preview_key(job_id: str) -> str:
    """A small animated WebP of the result video, for the recent-jobs list."""
    return f"{_job_prefix(job_id)}/result-animated.webp"


def frames_zip_key(job_id: str) -> str:
    """Every finished frame of a video job as PNGs in one ZIP."""
    return f"{_job_prefix(job_id)}/frames.zip"


class StorageError(OSError):
    """A storage call failed for a reason of the storage's own (an S3 error answer, an unreachable
    endpoint); ``reason`` says what happened, for people, ``transient`` whether trying again later may
    succeed (a 5xx or throttling answer, a timeout) or not (access denied, no such bucket)."""

    def __init__(self, message: str, *, reason: str, transient: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.transient = transient


@dataclass(frozen=True)
class StorageProblem:
    """What a failed storage call means: ``reason`` for people ("no space left on device", "S3 answered
    503 SlowDown"), ``transient``: the same call may succeed later (a full disk, a throttled bucket)."""

    reason: str
    transient: bool


# Local errors that go away without a code change: space or quota freed, a remount, a busy NFS server.
TRANSIENT_ERRNOS = frozenset({
    errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EAGAIN, errno.EBUSY, errno.EINTR,
    errno.ESTALE, errno.ETIMEDOUT, errno.ENOMEM, errno.ENFILE, errno.EMFILE,
})  # fmt: skip


def storage_problem(error: BaseException) -> StorageProblem | None:
    """What a storage call's exception means (StorageProblem), or None when it is no storage failure
    (a bug, a refused key). A missing object (FileNotFoundError) is a problem here too: callers that
    read an object they expect to exist catch FileNotFoundError before asking."""
    if isinstance(error, StorageError):
        return StorageProblem(error.reason, error.transient)
    if isinstance(error, OSError) and error.errno is not None:
        reason = os.strerror(error.errno)
        return StorageProblem(reason[:1].lower() + reason[1:], error.errno in TRANSIENT_ERRNOS)
    if isinstance(error, OSError):
        return StorageProblem(str(error) or type(error).__name__, True)
    return None


def check_key(key: str) -> str:
    """Refuse any key that is not lowercase segments of [a-z0-9_.-] (no '..', no leading '/')."""
    if not _KEY.fullmatch(key) or ".." in key:
        raise ValueError(f"invalid storage key: {key!r}")
    return key


class Storage(ABC):
    """Bytes stored under string keys. Implementations: LocalStorage, S3Storage."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Store data under key atomically: readers see the old object or the new one, never a part."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The bytes under key; FileNotFoundError when there are none."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object under key (no error if there is none)."""

    @abstractmethod
    def move(self, source: str, target: str) -> None:
        """Put the object under source under target instead (replacing what target held), atomically
        for readers of target; FileNotFoundError when source holds none. On a local disk a rename,
        needing no free space: a finished image kept in the checkpoint becomes the result on a full disk."""

    def replace_bytes(self, key: str, data: bytes) -> None:
        """write_bytes, except that where the new bytes do not fit beside the old ones (a nearly full
        disk) the old ones make room: removed first, so for a moment key holds nothing."""
        self.write_bytes(key, data)

    @abstractmethod
    def delete_job(self, job_id: str) -> None:
        """Remove every object of the job (no error if there are none)."""

    def check_writable(self) -> None:
        """Write and read back a probe object; raises if storage cannot be used (/readyz)."""
        self.write_bytes(HEALTH_KEY, b"ok")
        if self.read_bytes(HEALTH_KEY) != b"ok":
            raise OSError("storage probe read back different bytes")


class LocalStorage(Storage):
    """A directory shared by web and workers (ATELIER_STORAGE_DIR)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        # Belt and braces after check_key: the resolved path must stay inside the root.
        if not path.is_relative_to(self.root):
            raise ValueError(f"invalid storage key: {key!r}")
        return path

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as temp:
                temp.write(data)
                temp.flush()
                os.fsync(temp.fileno())
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def move(self, source: str, target: str) -> None:
        target_path = self._path(target)
        target_path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._path(source), target_path)

    def replace_bytes(self, key: str, data: bytes) -> None:
        try:
            self.write_bytes(key, data)
            return
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            path = self._path(key)
            try:
                old_size = path.stat().st_size
                usage = shutil.disk_usage(path.parent)
            except OSError:
                raise error from None
            # Room for the new bytes once the old are gone (a block of slack per 4 KiB page rounding):
            # only then give up the old copy, or the key would end up holding nothing at all.
            if usage.free + old_size < len(data) + 2 * 4096:
                raise
        path.unlink(missing_ok=True)
        self.write_bytes(key, data)

    def delete_job(self, job_id: str) -> None:
        job_dir = self._path(_job_prefix(job_id))
        if job_dir.is_dir():
            shutil.rmtree(job_dir)


# Error codes S3 and its look-alikes answer when they want fewer requests (AWS, MinIO, Ceph, R2).
S3_THROTTLING_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests",
    "RequestThrottled", "ServiceUnavailable", "InternalError", "RequestTimeout",
})  # fmt: skip


class S3Storage(Storage):
    """Objects in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, ...): one store for web and workers on
    any number of hosts (ATELIER_STORAGE_URL=s3://bucket/prefix). Keys live under the prefix, so one bucket
    can hold several installations."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        # Imported here, so the local backend needs no boto3.
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        # Empty settings mean "not set": boto3 then reads the standard AWS variables and files.
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=Config(
                connect_timeout=5,
                read_timeout=30,
                # Three attempts in all (botocore's backoff between them: up to 1 s, then up to 2 s): a blip
                # is ridden out here, a longer outage reaches the caller within seconds, where it is said and
                # handled: the worker's StorageWaiter retries for ATELIER_STORAGE_RETRY_SECONDS while the
                # job's status says why; the web answers 503 with Retry-After. The six attempts before
                # (max_attempts=5 counts retries) hid a throttled bucket for up to 15 s a call.
                retries={"total_max_attempts": 3, "mode": "standard"},
                # Path-style URLs (endpoint/bucket/key) work with every S3-compatible server.
                s3={"addressing_style": "path"} if endpoint_url else None,
            ),
        )

    def __repr__(self) -> str:
        return f"S3Storage(s3://{self.bucket}/{self.prefix})"

    def _object_key(self, key: str) -> str:
        key = check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextlib.contextmanager
    def _answers(self, action: str, key: str) -> Iterator[None]:
        """botocore's exceptions (after its own retries) as FileNotFoundError (no such key) or
        StorageError, so callers handle one family of errors for both backends."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as error:
            answer: dict[str, Any] = error.response.get("Error", {})
            code = str(answer.get("Code", ""))
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code in ("NoSuchKey", "404") and action in ("read", "move"):
                raise FileNotFoundError(f"no object {key!r} in {self!r}") from error
            reason = f"S3 answered {status or '?'} {code}".rstrip()
            transient = status >= 500 or status in (408, 429) or code in S3_THROTTLING_CODES
            raise StorageError(
                f"{action} {key!r} in {self!r}: {error}", reason=reason, transient=transient
            ) from error
        except BotoCoreError as error:  # no answer at all: connection refused or reset, a timeout
            reason = f"S3 did not answer ({type(error).__name__})"
            raise StorageError(
                f"{action} {key!r} in {self!r}: {error}", reason=reason, transient=True
            ) from error

    def write_bytes(self, key: str, data: bytes) -> None:
        # One PUT replaces the object as a whole: readers get the old bytes or the new, never a part.
        with self._answers("write", key):
            self._client.put_object(Bucket=self.bucket, Key=self._object_key(key), Body=data)

    def read_bytes(self, key: str) -> bytes:
        with self._answers("read", key):
            response = self._client.get_object(Bucket=self.bucket, Key=self._object_key(key))
            body = response["Body"]
            try:
                return body.read()
            finally:
                body.close()

    def delete(self, key: str) -> None:
        # S3 answers DeleteObject for a missing key with success too.
        with self._answers("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=self._object_key(key))

    def move(self, source: str, target: str) -> None:
        # A server-side copy (no bytes through this process), then the source goes.
        with self._answers("move", source):
            self._client.copy_object(
                Bucket=self.bucket,
                Key=self._object_key(target),
                CopySource={"Bucket": self.bucket, "Key": self._object_key(source)},
            )
        self.delete(source)

    def delete_job(self, job_id: str) -> None:
        job_prefix = self._object_key(_job_prefix(job_id)) + "/"
        with self._answers("delete", _job_prefix(job_id)):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=job_prefix
            )
            for page in pages:  # at most 1000 keys a page, the most one DeleteObjects takes
                objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if not objects:
                    continue
                response = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
                if response.get("Errors"):
                    first = response["Errors"][0]
                    raise OSError(
                        f"could not delete {first.get('Key')!r} in {self!r}: {first.get('Message')}"
                    )


def storage_from_settings(settings: Settings) -> Storage:
    """LocalStorage or S3Storage, as ATELIER_STORAGE_URL says (empty: the directory ATELIER_STORAGE_DIR)."""
    url = settings.storage_url
    if url.startswith("s3://"):
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return S3Storage(
            bucket,
            prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        )
    if url.startswith("file://"):
        return LocalStorage(Path(url.removeprefix("file://")))
    return LocalStorage(settings.storage_dir)


@lru_cache
def get_storage() -> Storage:
    """The storage backend the settings choose (one per process)."""
    return storage_from_settings(get_settings())
