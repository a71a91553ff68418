"""One delivery attempt (worker/webhooks.py) against a real receiver on 127.0.0.1: the URL is checked
again at delivery, a redirect is an answer (not followed), the answer's body is read only so far."""

from __future__ import annotations

import time
from typing import Any

from core.jobs import JobRecord
from core.settings import Settings
from core.webhooks import job_event
from tests.support.receiver import Receiver
from worker.webhooks import attempt_delivery as attempt_with_event
from worker.webhooks import max_retries


def attempt_delivery(record: JobRecord, settings: Settings, number: int, final: bool) -> dict[str, Any]:
    return attempt_with_event(
        record.callback_url, job_event(record, record.base_url), settings, number, final
    )


def finished_record(callback_url: str) -> JobRecord:
    now = time.time()
    return JobRecord(
        id="ab" * 16, status="failed", options={}, style_count=1, created_at=now - 3, started_at=now - 2,
        finished_at=now, error="stopped at the time limit", callback_url=callback_url, base_url="https://a.example/",
    )  # fmt: skip


def test_a_private_address_is_refused_at_delivery_too_and_never_called() -> None:
    with Receiver() as receiver:
        strict = Settings(webhook_secret="s", webhook_allow_private=False)
        attempt = attempt_delivery(finished_record(receiver.url()), strict, 1, final=False)

        assert attempt["outcome"] == "refused"  # not retried: the address will not become public
        assert "a loopback address" in attempt["error"]
        assert receiver.received == []


def test_a_redirect_is_not_followed_and_counts_as_a_failure() -> None:
    with Receiver(answers=[302]) as receiver:
        allowed = Settings(webhook_secret="s", webhook_allow_private=True)
        attempt = attempt_delivery(finished_record(receiver.url("/moved")), allowed, 1, final=False)
        last = attempt_delivery(finished_record(receiver.url("/moved")), allowed, 2, final=True)

    assert (attempt["outcome"], attempt["status_code"]) == ("retrying", 302)
    assert last["outcome"] == "delivered"  # the receiver answers 200 once its script ran out
    assert [r.path for r in receiver.received] == ["/moved", "/moved"]


def test_no_answer_is_a_failure_that_names_the_error() -> None:
    with Receiver() as receiver:
        url = receiver.url()
    allowed = Settings(webhook_secret="s", webhook_allow_private=True)  # the receiver has stopped
    attempt = attempt_delivery(finished_record(url), allowed, 3, final=True)

    assert attempt["outcome"] == "failed" and attempt["status_code"] is None
    assert "ConnectionRefusedError" in attempt["error"]


def test_retries_fit_in_the_retry_time() -> None:
    assert max_retries(0) == 0
    assert max_retries(20) == 4  # waits of 1, 2, 4, 8 s: 15 s; a fifth (16 s) would pass 20
    assert max_retries(600) == 10  # 1 ... 64 s, then 120 s apart
