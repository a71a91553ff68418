"""worker/broker.py against a real Redis and real kombu: the unacknowledged-message layout it reads and
writes is kombu's private one, so these fail if a kombu upgrade changes it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from celery import Celery
from kombu.transport.redis import Channel
from redis import Redis

from core.jobs import new_job_id
from core.routing import TASK_NAME
from tests.support.stack import RedisServer
from worker.broker import UNACKED_INDEX_KEY, UNACKED_KEY, renew_messages, requeue_first

QUEUE = "broker-test"
VISIBILITY_SECONDS = 0.5


@dataclass
class Broker:
    redis: Redis
    channel: Any  # kombu.transport.redis.Channel, as a worker's consumer uses it
    celery: Celery

    def send(self) -> str:
        """A job's message, sent as the web sends it (app/queue.py): the task id is the job id."""
        job_id = new_job_id()
        self.celery.send_task(TASK_NAME, args=[job_id], queue=QUEUE, task_id=job_id)
        return job_id

    def fetch(self) -> Any:
        """The next message of the queue, delivered and not acknowledged (kombu's QoS keeps it)."""
        message = self.channel.basic_get(QUEUE, no_ack=False)
        assert message is not None, "the queue is empty"
        return message

    def queued_ids(self) -> list[str]:
        """Task ids of the queue's messages, the next one to be taken first."""
        return [json.loads(raw)["headers"]["id"] for raw in reversed(self.redis.lrange(QUEUE, 0, -1))]


@pytest.fixture
def broker(redis_server: RedisServer) -> Iterator[Broker]:
    url = redis_server.url(7)
    redis = Redis.from_url(url, decode_responses=True)  # as the job store's client (core/jobs/store.py)
    redis.flushdb()
    celery = Celery("broker-test", broker=url)
    celery.conf.broker_transport_options = {"visibility_timeout": VISIBILITY_SECONDS}
    connection = celery.connection_for_write()
    try:
        yield Broker(redis, connection.default_channel, celery)
    finally:
        connection.release()
        celery.close()
        redis.flushdb()
        redis.close()


def test_kombu_keeps_an_unacknowledged_message_where_and_as_the_worker_reads_it(broker: Broker) -> None:
    assert (Channel.unacked_key, Channel.unacked_index_key) == (UNACKED_KEY, UNACKED_INDEX_KEY)
    job_id = broker.send()
    before = time.time()
    message = broker.fetch()
    tag = message.delivery_tag

    assert broker.queued_ids() == []
    assert before - 1 <= broker.redis.zscore(UNACKED_INDEX_KEY, tag) <= time.time() + 1
    payload, exchange, routing_key = json.loads(broker.redis.hget(UNACKED_KEY, tag))
    assert payload["headers"]["id"] == job_id and routing_key == QUEUE and isinstance(exchange, str)
    assert payload["properties"]["delivery_tag"] == tag
    assert payload["properties"].get("priority") in (None, 0)  # requeue_first can move it
    message.ack()
    assert broker.redis.hlen(UNACKED_KEY) == 0 and broker.redis.zcard(UNACKED_INDEX_KEY) == 0


def test_kombu_restores_only_the_messages_whose_lease_was_not_renewed(broker: Broker) -> None:
    held_id, dead_id = broker.send(), broker.send()
    held, dead = broker.fetch(), broker.fetch()
    time.sleep(VISIBILITY_SECONDS + 0.2)  # both past the visibility timeout

    assert renew_messages(broker.redis, [held.delivery_tag, "acknowledged"]) == 1
    broker.channel.qos.restore_visible(num=10, interval=1)  # what every idle worker runs

    assert broker.queued_ids() == [dead_id]
    assert broker.redis.hexists(UNACKED_KEY, held.delivery_tag)
    assert not broker.redis.hexists(UNACKED_KEY, dead.delivery_tag)
    index = dict(broker.redis.zrange(UNACKED_INDEX_KEY, 0, -1, withscores=True))
    assert list(index) == [held.delivery_tag]  # an acknowledged message is not put back
    assert held.headers["id"] == held_id
    held.ack()


def test_a_requeued_message_is_taken_next_and_the_old_acknowledgement_leaves_it_alone(broker: Broker) -> None:
    handed_back = broker.send()
    first_delivery = broker.fetch()
    waiting = broker.send()  # submitted while the first ran: it waits less

    assert requeue_first(broker.redis, handed_back) is True
    assert broker.redis.hlen(UNACKED_KEY) == 0 and broker.redis.zcard(UNACKED_INDEX_KEY) == 0
    first_delivery.ack()  # what Celery's Ignore does with the old delivery
    assert broker.queued_ids() == [handed_back, waiting]

    second_delivery = broker.fetch()
    assert second_delivery.headers["id"] == handed_back
    assert second_delivery.delivery_tag != first_delivery.delivery_tag
    assert second_delivery.delivery_info.get("redelivered") is True
    assert broker.redis.hexists(UNACKED_KEY, second_delivery.delivery_tag)  # kombu keeps it again
    second_delivery.ack()
    assert broker.fetch().headers["id"] == waiting
    assert requeue_first(broker.redis, new_job_id()) is False  # no message of that task is held
