"""A job store on an empty Redis database of the test stack's server, for unit tests of core.jobs."""

from __future__ import annotations

from collections.abc import Iterator

from redis import Redis

from core.jobs import JobStore
from tests.support.stack import Stack


def scratch_job_store(stack: Stack, database: int) -> Iterator[JobStore]:
    """Yield a JobStore on `database` (not the stack's own), emptied before and after."""
    redis = Redis.from_url(stack.redis_url.rsplit("/", 1)[0] + f"/{database}", decode_responses=True)
    redis.flushdb()
    try:
        yield JobStore(redis, ttl_seconds=600)
    finally:
        redis.flushdb()
        redis.close()
