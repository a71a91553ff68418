"""Storage of job files: every path (or object key) Atelier uses lives in this module.

Callers speak in string keys and bytes only, never in local paths, so a second backend (S3) can
sit behind the same interface. Keys are built here from validated job ids; nothing a user typed
(file names included) ever becomes part of a key. Used by web and worker alike: no FastAPI import.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from functools import lru_cache
from pathlib import Path

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

    def delete_job(self, job_id: str) -> None:
        job_dir = self._path(_job_prefix(job_id))
        if job_dir.is_dir():
            shutil.rmtree(job_dir)


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
                retries={"max_attempts": 5, "mode": "standard"},
                # Path-style URLs (endpoint/bucket/key) work with every S3-compatible server.
                s3={"addressing_style": "path"} if endpoint_url else None,
            ),
        )

    def __repr__(self) -> str:
        return f"S3Storage(s3://{self.bucket}/{self.prefix})"

    def _object_key(self, key: str) -> str:
        key = check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def write_bytes(self, key: str, data: bytes) -> None:
        # One PUT replaces the object as a whole: readers get the old bytes or the new, never a part.
        self._client.put_object(Bucket=self.bucket, Key=self._object_key(key), Body=data)

    def read_bytes(self, key: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._object_key(key))
        except self._client.exceptions.NoSuchKey as error:
            raise FileNotFoundError(f"no object {key!r} in {self!r}") from error
        body = response["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def delete(self, key: str) -> None:
        # S3 answers DeleteObject for a missing key with success too.
        self._client.delete_object(Bucket=self.bucket, Key=self._object_key(key))

    def delete_job(self, job_id: str) -> None:
        job_prefix = self._object_key(_job_prefix(job_id)) + "/"
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=job_prefix)
        for page in pages:  # at most 1000 keys a page, the most one DeleteObjects takes
            objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if not objects:
                continue
            response = self._client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
            )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise OSError(f"could not delete {first.get('Key')!r} in {self!r}: {first.get('Message')}")


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
