"""A callback_url is checked at submission: a non-public or malformed URL is a 422 naming the field,
with nothing stored or queued; an allowed one is kept and its delivery shown in the job's status."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.images import png_bytes
from tests.support.inprocess import InProcessWeb

SECRET = {"ATELIER_WEBHOOK_SECRET": "whsec_test"}


@pytest.fixture
def strict_web(web_factory: Callable[..., InProcessWeb]) -> InProcessWeb:
    return web_factory("webhooks-strict", SECRET)


def submit_with_callback(web: InProcessWeb, url: str):
    return web.submit(
        png_bytes(40, 30, seed=1), [png_bytes(32, 32, seed=2)], size=32, iterations=2, callback_url=url
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:8080/hook", "127.0.0.1, a loopback address"),
        ("http://localhost/hook", "a loopback address"),
        ("http://10.0.0.5/hook", "10.0.0.5, a private address"),
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("ftp://example.com/hook", "must be an http:// or https:// URL"),
    ],
)
def test_a_callback_to_a_private_address_is_refused_and_nothing_is_stored(
    strict_web: InProcessWeb, url: str, says: str
) -> None:
    response = submit_with_callback(strict_web, url)

    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith("callback_url: ") and says in detail
    assert strict_web.stored_files() == set()  # a web of its own: nothing was ever stored there
    assert strict_web.busy_job_ids() == []
    assert strict_web.queue_length() == 0


def test_without_a_signing_secret_callbacks_are_refused(web: InProcessWeb) -> None:
    stored_before = web.stored_files()
    response = submit_with_callback(web, "https://hooks.example.com/in")

    assert response.status_code == 422
    assert "ATELIER_WEBHOOK_SECRET" in response.json()["detail"]
    assert web.stored_files() == stored_before


def test_an_allowed_callback_is_kept_and_shown_as_waiting(web_factory: Callable[..., InProcessWeb]) -> None:
    web = web_factory("webhooks-private-allowed", {**SECRET, "ATELIER_WEBHOOK_ALLOW_PRIVATE": "true"})

    response = submit_with_callback(web, "http://127.0.0.1:9/hook?token=s3cret")

    assert response.status_code == 202, response.text
    status = web.status(response.json()["id"])
    assert status["webhook"] == {"host": "127.0.0.1:9", "state": "waiting", "attempts": []}
    with web.client as client:  # the job never runs here (no worker): cancel it, which finishes it
        client.post(f"/api/jobs/{status['id']}/cancel")
    assert web.status(status["id"])["webhook"]["state"] == "pending"
    with web.redis() as redis:  # sent to the webhooks worker's queue, once
        assert redis.llen("atelier-webhooks") == 1


def test_a_job_without_callback_has_no_webhook(web: InProcessWeb) -> None:
    response = web.submit(png_bytes(40, 30, seed=1), [png_bytes(32, 32, seed=2)], size=32, iterations=2)

    assert web.status(response.json()["id"])["webhook"] is None
    with web.client as client:
        client.post(f"/api/jobs/{response.json()['id']}/cancel")
