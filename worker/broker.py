"""The worker's reach into kombu's Redis transport: its unacknowledged messages, in kombu's layout.

Kombu keeps every delivered, unacknowledged message in two keys of the broker's Redis (which is the
job store's: settings.redis_url):
  unacked        hash {delivery tag: JSON [message, exchange, routing key]}
  unacked_index  sorted set {delivery tag: time delivered}; kombu's restore_visible (any idle worker)
                 requeues the messages older than the visibility timeout
A queue is a list named after it: kombu LPUSHes new messages and consumers BRPOP, so the right end is
taken next. This layout is kombu's private business: tests/worker/test_broker.py fails if it changes.

Atelier uses it twice: a live worker keeps its messages fresh in the index (renew_messages, from
worker/lease.py: MessageLease), so only a dead worker's messages age; and a job its stopping worker
handed back goes to the front of its queue (requeue_first, from worker/recovery.py).
"""

from __future__ import annotations

import json
import time
import uuid
from functools import lru_cache
from importlib.resources import files
from typing import Any

from redis import Redis

UNACKED_KEY = "unacked"  # kombu.transport.redis.Channel.unacked_key
UNACKED_INDEX_KEY = "unacked_index"  # kombu.transport.redis.Channel.unacked_index_key


@lru_cache
def _renew_source() -> str:
    return files(__package__).joinpath("renew_messages.lua").read_text(encoding="utf-8")


def renew_messages(redis: Redis, delivery_tags: list[str]) -> int:
    """Mark these unacknowledged broker messages (kombu delivery tags) as just delivered, so kombu's
    restore_visible leaves them with this live worker for another visibility timeout; returns how many
    were still unacknowledged."""
    if not delivery_tags:
        return 0
    renew = redis.register_script(_renew_source())
    return int(renew(keys=[UNACKED_INDEX_KEY], args=[repr(time.time()), *delivery_tags]))


def requeue_first(redis: Redis, task_id: str) -> bool:
    """Put the unacknowledged message of this Celery task back at the front of its queue, as kombu's
    restore of a dead worker's message does (kombu's own reject appends it at the back).

    It goes back under a new delivery tag, so the acknowledgement of the old one that follows cannot
    delete the bookkeeping of the worker that takes it next. False (nothing changed) when not exactly
    one such message is held, or it has a priority (a queue of its own in kombu).
    """
    held = []
    for tag, raw in redis.hgetall(UNACKED_KEY).items():
        try:
            message, _exchange, routing_key = json.loads(raw)
            if message["headers"]["id"] == task_id:
                held.append((tag, raw, message, routing_key))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # not a Celery message of the shape this code knows
    if len(held) != 1:  # none, or another worker holds a second delivery: which one is ours?
        return False
    tag, raw, message, queue = held[0]
    if message["properties"].get("priority") not in (None, 0):
        return False
    message["properties"]["delivery_tag"] = str(uuid.uuid4())
    message["properties"].setdefault("delivery_info", {})["redelivered"] = True
    moved = False

    def move(pipe: Any) -> None:
        nonlocal moved
        moved = False
        if pipe.hget(UNACKED_KEY, tag) != raw:
            return  # acknowledged meanwhile
        pipe.multi()
        pipe.hdel(UNACKED_KEY, tag)
        pipe.zrem(UNACKED_INDEX_KEY, tag)
        pipe.rpush(queue, json.dumps(message))  # consumers BRPOP: the right end is taken next
        moved = True

    redis.transaction(move, UNACKED_KEY)
    return moved
