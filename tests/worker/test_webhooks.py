"""Webhooks through a real stack: web, style worker, webhooks worker, Redis, and an HTTP receiver on
127.0.0.1 (allowed here by ATELIER_WEBHOOK_ALLOW_PRIVATE): the signed event arrives once; a 500 is
retried and then delivered exactly once; every attempt shows in the job's status."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime

import httpx
import pytest

from tests.support.images import png_bytes
from tests.support.receiver import Receiver
from tests.support.stack import Stack

logger = logging.getLogger(__name__)
SECRET = "whsec_test_secret"
WEBHOOK_ENV = {
    "ATELIER_WEBHOOK_SECRET": SECRET,
    "ATELIER_WEBHOOK_ALLOW_PRIVATE": "true",
    "ATELIER_WEBHOOK_RETRY_SECONDS": "20",
}


@pytest.fixture(scope="module")
def webhook_stack(stack_factory: Callable[..., Stack]) -> Stack:
    return stack_factory("webhooks", WEBHOOK_ENV, webhooks=True)


def verify(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """docs/api.md's verification, as a receiver would write it."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    timestamp, signature = int(fields["t"]), fields["v1"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature) and abs(time.time() - timestamp) <= tolerance


def run_job_with_callback(stack: Stack, url: str) -> dict:
    response = stack.submit(
        png_bytes(40, 30, seed=3), [png_bytes(32, 32, seed=4)], size=32, iterations=5, callback_url=url
    )
    assert response.status_code == 202, response.text
    return stack.wait_for(response.json()["id"], {"succeeded", "failed", "cancelled"})


def wait_for_webhook_state(stack: Stack, job_id: str, states: set[str], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    with stack.client as client:  # one client for the polls, not one (and its TLS set-up) each
        while (webhook := client.get(f"/api/jobs/{job_id}").json()["webhook"])["state"] not in states:
            if time.monotonic() > deadline:
                raise TimeoutError(f"webhook still {webhook}")
            time.sleep(0.05)
    return webhook


def test_a_finished_job_posts_its_signed_event(webhook_stack: Stack) -> None:
    with Receiver() as receiver:
        final = run_job_with_callback(webhook_stack, receiver.url("/hooks/atelier?k=1"))
        [received] = receiver.wait_for(1)
        webhook = wait_for_webhook_state(webhook_stack, final["id"], {"delivered"})

    assert final["status"] == "succeeded"
    assert received.path == "/hooks/atelier?k=1"
    assert received.headers["content-type"] == "application/json"
    assert verify(SECRET, received.headers["atelier-signature"], received.body)
    assert not verify("another secret", received.headers["atelier-signature"], received.body)
    event = json.loads(received.body)
    job = event["job"]
    assert (event["type"], job["id"], job["status"], job["error"]) == (
        "job.succeeded",
        final["id"],
        "succeeded",
        None,
    )
    assert job["result_url"] == f"{webhook_stack.base_url}/api/jobs/{final['id']}/result"
    assert httpx.get(job["result_url"]).headers["content-type"] == "image/png"
    assert job["page_url"] == f"{webhook_stack.base_url}/jobs/{final['id']}"
    assert job["timings"]["steps"] == 5 and job["timings"]["running_seconds"] > 0
    [attempt] = webhook["attempts"]
    assert (attempt["attempt"], attempt["outcome"], attempt["status_code"]) == (1, "delivered", 200)
    assert webhook["host"] == receiver.url("").removeprefix("http://")
    latency = received.arrived_at - datetime.fromisoformat(job["finished_at"]).timestamp()
    logger.warning("webhook latency: job finished -> event received in %.3f s", latency)
    assert 0 <= latency < 5


def test_a_500_is_retried_and_then_delivered_exactly_once(webhook_stack: Stack) -> None:
    with Receiver(answers=[500]) as receiver:
        final = run_job_with_callback(webhook_stack, receiver.url())
        first, second = receiver.wait_for(2)
        webhook = wait_for_webhook_state(webhook_stack, final["id"], {"delivered", "failed"})
        time.sleep(3)  # a third delivery would come within the backoff (1-2 s): none may
        assert len(receiver.received) == 2

    assert first.body == second.body  # one event, its id stable for the receiver to deduplicate
    assert verify(SECRET, second.headers["atelier-signature"], second.body)
    assert second.arrived_at > first.arrived_at
    outcomes = [(a["attempt"], a["outcome"], a["status_code"]) for a in webhook["attempts"]]
    assert outcomes == [(1, "retrying", 500), (2, "delivered", 200)]
    assert webhook["state"] == "delivered"


def test_a_cancelled_queued_job_is_announced_too(webhook_stack: Stack) -> None:
    with Receiver() as receiver:
        blocker = webhook_stack.submit(
            png_bytes(40, 30, seed=5), [png_bytes(32, 32, seed=6)], size=32, iterations=400
        )
        queued = webhook_stack.submit(
            png_bytes(40, 30, seed=7),
            [png_bytes(32, 32, seed=8)],
            size=32,
            iterations=5,
            callback_url=receiver.url(),
        )
        with webhook_stack.client as client:
            client.post(f"/api/jobs/{queued.json()['id']}/cancel")
            client.post(f"/api/jobs/{blocker.json()['id']}/cancel")
        [received] = receiver.wait_for(1)

    event = json.loads(received.body)
    assert (event["type"], event["job"]["id"], event["job"]["result_url"]) == (
        "job.cancelled",
        queued.json()["id"],
        None,
    )


def test_a_batch_posts_one_event_once_every_job_has_ended(webhook_stack: Stack) -> None:
    files = [("content", (f"photo{i}.png", png_bytes(40, 30, seed=60 + i), "image/png")) for i in range(2)]
    files.append(("style", ("paint.png", png_bytes(32, 32, seed=62), "image/png")))
    with Receiver() as receiver:
        with webhook_stack.client as client:
            response = client.post(
                "/api/batches",
                files=files,
                data={"size": "32", "iterations": "5", "callback_url": receiver.url("/batch")},
            )
        assert response.status_code == 202, response.text
        batch = response.json()
        [received] = receiver.wait_for(1)
        deadline = time.monotonic() + 20
        with webhook_stack.client as client:  # one client for the polls, not one (and its TLS set-up) each
            while (status := client.get(batch["status_url"]).json())["webhook"]["state"] != "delivered":
                assert time.monotonic() < deadline, status["webhook"]
                time.sleep(0.05)
        time.sleep(1)
        assert len(receiver.received) == 1  # one event for the batch, none per job

    assert verify(SECRET, received.headers["atelier-signature"], received.body)
    event = json.loads(received.body)
    assert (event["type"], event["batch"]["id"]) == ("batch.finished", batch["id"])
    assert event["batch"]["totals"] == {"jobs": 2, "cancelled": 0, "failed": 0, "succeeded": 2, "expired": 0}
    assert [job["content"] for job in event["batch"]["jobs"]] == ["photo0", "photo1"]
    assert all(job["result_url"].startswith(webhook_stack.base_url) for job in event["batch"]["jobs"])
    assert event["batch"]["download_url"] == f"{webhook_stack.base_url}/api/batches/{batch['id']}/download"
    assert status["status"] == "finished" and [a["outcome"] for a in status["webhook"]["attempts"]] == [
        "delivered"
    ]
