"""The Idempotency-Key header of POST /api/jobs and POST /api/batches (Stripe's model): a client that
retries a submission after a timeout gets the job (or batch) its first try created, not a second one.

- The same key with the same request (the form's fields, each file by its SHA-256, and the path)
  answers 200 with the first response's job id and token (``Idempotent-Replayed: true``).
- The same key with a different request is a 422 that says so.
- Two requests with one key at once create one job: the first claims the key atomically (SET NX in
  the job store); the other waits for it to finish, then answers the same job.
- A key lives as long as its job: once the job is gone (deleted, expired) the key starts afresh.

Redis never holds the key itself (its SHA-256 names the record) nor the job's token in clear: the
token is sealed with a stream derived from the key, so only a caller who knows the key gets it back.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.submission import SubmissionError, SubmittedJob
from core.jobs import JobStore
from core.settings import get_settings

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
PENDING_SECONDS = 300  # a claim whose web process died mid-submission frees its key after this
WAIT_SECONDS = 60.0  # a concurrent request with the same key waits this long for the first
POLL_SECONDS = 0.05
HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class IdempotencyKey:
    key: str
    digest: str  # SHA-256 of the key: the record's name in Redis
    request: str  # SHA-256 of the request


def seal(token: str, key: str) -> str:
    """The token XORed with a keystream of the key (hex); seal(seal(t)) is t again, via unseal."""
    data = token.encode()
    stream = hashlib.shake_256(b"atelier-idempotency-token:" + key.encode()).digest(len(data))
    return bytes(a ^ b for a, b in zip(data, stream, strict=True)).hex()


def unseal(sealed: str, key: str) -> str:
    data = bytes.fromhex(sealed)
    stream = hashlib.shake_256(b"atelier-idempotency-token:" + key.encode()).digest(len(data))
    return bytes(a ^ b for a, b in zip(data, stream, strict=True)).decode()


def _file_digest(upload: UploadFile) -> str:
    digest = hashlib.sha256()
    upload.file.seek(0)
    while chunk := upload.file.read(HASH_CHUNK):
        digest.update(chunk)
    upload.file.seek(0)  # the submission reads it next
    return digest.hexdigest()


async def request_hash(request: Request) -> str:
    """SHA-256 of what the request asks for: its path and its form's fields in name order (repeats in
    their order), each file part by the SHA-256 of its bytes."""
    form = await request.form()  # already parsed for the route: Starlette keeps it
    parts: list[tuple[str, str, str]] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            parts.append((name, "file", await run_in_threadpool(_file_digest, value)))
        else:
            parts.append((name, "text", value))
    parts.sort(key=lambda part: part[0])  # stable: repeated fields (styles) keep their order
    canonical = json.dumps([request.url.path, parts], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def idempotency_key(request: Request, key: str | None) -> IdempotencyKey | None:
    """The request's key (its Idempotency-Key header), or None without one; 422 for a malformed one."""
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise SubmissionError(
            422, f"{HEADER}: must be 1 to {MAX_KEY_LENGTH} printable ASCII characters", HEADER
        )
    digest = hashlib.sha256(key.encode()).hexdigest()
    return IdempotencyKey(key, digest, await request_hash(request))


class Created(Protocol):
    """What a submission creates: a job (SubmittedJob) or a batch (app.batches.SubmittedBatch)."""

    @property
    def id(self) -> str: ...

    @property
    def token(self) -> str: ...


T = TypeVar("T", bound=Created)


def replay_job(store: JobStore) -> Callable[[str, str], SubmittedJob | None]:
    """The job an earlier request created, with its token; None once the job is gone."""

    def replay(job_id: str, token: str) -> SubmittedJob | None:
        record = store.get(job_id)
        return None if record is None else SubmittedJob(record, token)

    return replay


async def once(
    request: Request,
    store: JobStore,
    header: str | None,
    create: Callable[[], Awaitable[T]],
    replay: Callable[[str, str], T | None] | None = None,
) -> tuple[T, bool]:
    """create() the job (or batch) unless the request's Idempotency-Key (header) already did: (what it
    created, replayed). replay(id, token) loads an earlier one again (None: it is gone); jobs by default."""
    load: Callable[[str, str], Any] = replay or replay_job(store)
    key = await idempotency_key(request, header)
    if key is None:
        return await create(), False
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while True:
        stored = await run_in_threadpool(store.claim_idempotency, key.digest, key.request, PENDING_SECONDS)
        if stored is None:
            return await _create_under(key, store, create), False
        if stored["state"] != "gone" and stored["request"] != key.request:
            raise SubmissionError(
                422,
                f"{HEADER}: this key was used for a different request (other fields or files); "
                "send a new key for a new job",
                HEADER,
            )
        if stored["state"] == "done":
            earlier = await run_in_threadpool(load, stored["job_id"], unseal(stored["token"], key.key))
            if earlier is not None:
                return earlier, True
            await run_in_threadpool(store.forget_idempotency, key.digest)  # its job is gone
            continue
        if asyncio.get_running_loop().time() > deadline:
            raise SubmissionError(
                409, f"{HEADER}: a request with this key is still being processed", HEADER, retry_after=1
            )
        await asyncio.sleep(POLL_SECONDS)  # pending: the first request is creating the job


async def _create_under(key: IdempotencyKey, store: JobStore, create: Callable[[], Awaitable[T]]) -> T:
    try:
        job = await create()
    except BaseException:
        # Refused or failed: nothing was created, so the key may be used again (a fixed retry).
        await run_in_threadpool(store.forget_idempotency, key.digest)
        raise
    settings = get_settings()
    ttl = settings.job_ttl_seconds + settings.broker_visibility_timeout  # outlives the job's record
    await run_in_threadpool(
        store.complete_idempotency, key.digest, key.request, job.id, seal(job.token, key.key), ttl
    )
    return job
