"""A job store on an empty Redis database, for unit tests of core.jobs (no web, no worker).

store_fixture = scratch_job_store(redis_server, 3)   # the session's redis-server (tests/conftest.py)
store_fixture = scratch_job_store(stack, 3)          # or a running stack's Redis, another database
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from redis import Redis

from core.jobs import JobStore
from tests.support.stack import Stack


class RedisUrls(Protocol):
    def url(self, database: int) -> str: ...


def scratch_job_store(server: RedisUrls | Stack, database: int) -> Iterator[JobStore]:
    """Yield a JobStore on `database` of server (pick one nothing else uses), emptied before and after."""
    if isinstance(server, Stack):
        url = server.redis_url.rsplit("/", 1)[0] + f"/{database}"
    else:
        url = server.url(database)
    redis = Redis.from_url(url, decode_responses=True)
    redis.flushdb()
    try:
        yield JobStore(redis, ttl_seconds=600)
    finally:
        redis.flushdb()
        redis.close()
