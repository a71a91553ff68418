"""Per-client submission rate limit, counted in Redis so every web process shares it.

A fixed one-minute window per client IP (key core.jobs.rate_limit_key): simple, one INCR per
submission, and at worst 2x the limit across a window boundary, which is enough to stop a script
from flooding the queue. Behind a reverse proxy, run uvicorn with --proxy-headers and
--forwarded-allow-ips so the client address is the real one, not the proxy's.
"""

from __future__ import annotations

import math
import time

from redis import Redis

from core.jobs import rate_limit_key

WINDOW_SECONDS = 60


class RateLimited(Exception):
    """Too many submissions from one client; retry_after: seconds until the window resets."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(f"more than {limit} submissions per minute")
        self.limit = limit
        self.retry_after = retry_after


def count_submission(redis: Redis, client: str, limit: int, now: float | None = None) -> None:
    """Count one submission of client; raises RateLimited when it is over limit in this window.

    Refused attempts count too, so a client that keeps hammering stays refused until the window ends.
    """
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS)
    key = rate_limit_key(client, window)
    with redis.pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, 2 * WINDOW_SECONDS)  # the counter outlives its window a little, never forever
        count, _ = pipe.execute()
    if int(count) > limit:
        retry_after = max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
        raise RateLimited(limit, retry_after)
