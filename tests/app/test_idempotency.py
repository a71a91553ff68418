"""Idempotency-Key on POST /api/jobs: a retried submission gets the job its first try created; the
same key with another request is refused; concurrent requests with one key create one job."""

from __future__ import annotations

import threading
import uuid

import httpx

from tests.support.images import png_bytes
from tests.support.inprocess import InProcessWeb
from tests.support.stack import Stack

CONTENT, STYLE = png_bytes(40, 30, seed=11), png_bytes(32, 32, seed=12)


def post(
    client: httpx.Client, key: str | None, content: bytes = CONTENT, **options: object
) -> httpx.Response:
    files = [("content", ("c.png", content, "image/png")), ("style", ("s.png", STYLE, "image/png"))]
    data = {"size": "32", "iterations": "3", **{name: str(value) for name, value in options.items()}}
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/api/jobs", files=files, data=data, headers=headers)


def cancel_all(web: InProcessWeb | Stack) -> None:
    for job_id in web.busy_job_ids():
        web.cancel_in_store(job_id)


def test_the_same_key_and_request_return_the_same_job(web: InProcessWeb) -> None:
    key = str(uuid.uuid4())
    before = set(web.busy_job_ids())
    with web.client as client:
        first, again = post(client, key), post(client, key)

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["token"] == first.json()["token"]  # the client that missed it gets it back
    assert again.headers["idempotent-replayed"] == "true"
    assert set(web.busy_job_ids()) - before == {first.json()["id"]}
    cancel_all(web)


def test_the_same_key_with_another_request_is_refused(web: InProcessWeb) -> None:
    key = str(uuid.uuid4())
    with web.client as client:
        first = post(client, key)
        other_option = post(client, key, iterations=4)
        other_file = post(client, key, content=png_bytes(40, 30, seed=99))

    assert first.status_code == 202
    for refused in (other_option, other_file):
        assert refused.status_code == 422
        assert refused.json()["detail"].startswith(
            "Idempotency-Key: this key was used for a different request"
        )
    cancel_all(web)


def test_a_refused_request_leaves_its_key_free_for_the_fixed_one(web: InProcessWeb) -> None:
    key = str(uuid.uuid4())
    with web.client as client:
        refused = post(client, key, iterations=0)
        fixed = post(client, key)

    assert refused.status_code == 422 and refused.json()["detail"].startswith("iterations")
    assert fixed.status_code == 202
    cancel_all(web)


def test_a_key_lives_as_long_as_its_job(web: InProcessWeb) -> None:
    key = str(uuid.uuid4())
    with web.client as client:
        first = post(client, key).json()
        client.post(f"/api/jobs/{first['id']}/cancel")
        assert client.delete(f"/api/jobs/{first['id']}").status_code == 204
        after = post(client, key)

    assert after.status_code == 202 and after.json()["id"] != first["id"]
    cancel_all(web)


def test_a_malformed_key_is_refused_and_nothing_is_created(web: InProcessWeb) -> None:
    before = set(web.busy_job_ids())
    with web.client as client:
        response = post(client, "k" * 256)

    assert response.status_code == 422
    assert response.json()["detail"] == "Idempotency-Key: must be 1 to 255 printable ASCII characters"
    assert set(web.busy_job_ids()) == before


def test_concurrent_requests_with_one_key_create_one_job(web_process: Stack) -> None:
    key = str(uuid.uuid4())
    before = set(web_process.busy_job_ids())
    start = threading.Barrier(4)
    responses: list[httpx.Response] = []

    def submit() -> None:
        with web_process.stranger() as client:
            start.wait()
            responses.append(post(client, key))

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(response.status_code for response in responses) == [200, 200, 200, 202]
    assert len({response.json()["id"] for response in responses}) == 1
    assert set(web_process.busy_job_ids()) - before == {responses[0].json()["id"]}
    cancel_all(web_process)
