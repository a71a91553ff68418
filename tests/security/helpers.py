"""Shared by the security tests: a fresh client that holds no job cookies, and trace checks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.support.images import png_bytes
from tests.support.stack import Stack

CONTENT = png_bytes(48, 48, seed=70)
STYLE = png_bytes(48, 48, seed=71)
# Long enough that only a cancel ends it while a test looks at it (seconds per step on 2 CPU cores).
LONG_JOB = {"size": 48, "iterations": 2000}


def stranger(stack: Stack) -> httpx.Client:
    """A client that is not the submitter: its own (empty) cookie jar (in-process or real)."""
    return stack.stranger()


@contextmanager
def leaves_no_trace(stack: Stack) -> Iterator[None]:
    """Assert the block queued nothing, stored nothing and left the server healthy."""
    queued_before, files_before = stack.queue_length(), stack.stored_files()
    jobs_before = set(stack.busy_job_ids())
    yield
    assert set(stack.busy_job_ids()) == jobs_before, "a job was created"
    assert stack.queue_length() == queued_before, "a message was sent to the Celery queue"
    assert stack.stored_files() == files_before, "files were written"
    with stranger(stack) as client:
        assert client.get("/healthz").status_code == 200
