"""POST /api/batches in-process (no worker): every content × style job, or the listed pairs; refusals
name their limit and store nothing; the batch's status; its token; its Idempotency-Key."""

from __future__ import annotations

import uuid

import httpx

from tests.support.images import png_bytes
from tests.support.inprocess import InProcessWeb


def post_batch(
    client: httpx.Client,
    contents: int,
    styles: int,
    headers: dict[str, str] | None = None,
    **options: object,
) -> httpx.Response:
    files = [
        ("content", (f"photo{i}.png", png_bytes(40, 30, seed=50 + i), "image/png")) for i in range(contents)
    ]
    files += [
        ("style", (f"paint{i}.png", png_bytes(32, 32, seed=70 + i), "image/png")) for i in range(styles)
    ]
    data = {"size": "32", "iterations": "3", **{name: str(value) for name, value in options.items()}}
    return client.post("/api/batches", files=files, data=data, headers=headers or {})


def cancel_all(web: InProcessWeb) -> None:
    for job_id in web.busy_job_ids():
        web.cancel_in_store(job_id)


def test_a_batch_makes_every_content_by_style_job(web: InProcessWeb) -> None:
    with web.client as client:
        response = post_batch(client, contents=2, styles=3)
        assert response.status_code == 202, response.text
        created = response.json()
        status = client.get(created["status_url"]).json()

    assert len(created["jobs"]) == 6
    assert status["contents"] == ["photo0", "photo1"] and status["styles"] == ["paint0", "paint1", "paint2"]
    assert [(job["content"], job["style"]) for job in status["jobs"]] == [
        (c, s) for c in range(2) for s in range(3)
    ]
    assert status["totals"] == {
        "jobs": 6, "queued": 6, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0, "expired": 0,
    }  # fmt: skip
    assert status["status"] == "queued" and status["progress"] == 0
    job = web.status(created["jobs"][4])  # an ordinary job: content 2, style 2, one style each
    assert job["style_count"] == 1 and job["options"]["iterations"] == 3
    cancel_all(web)


def test_pairs_choose_the_jobs(web: InProcessWeb) -> None:
    with web.client as client:
        response = post_batch(client, contents=2, styles=2, pairs="1:2, 2:1")
        status = client.get(response.json()["status_url"]).json()

    assert [(job["content"], job["style"]) for job in status["jobs"]] == [(0, 1), (1, 0)]
    cancel_all(web)


def test_too_many_jobs_are_refused_naming_the_limit_with_nothing_stored(web: InProcessWeb) -> None:
    before = set(web.busy_job_ids()), web.stored_files()
    with web.client as client:
        response = post_batch(client, contents=5, styles=4)

    assert response.status_code == 422
    assert response.json()["detail"] == (
        "a batch makes at most 16 jobs (ATELIER_MAX_BATCH_JOBS); 5 content(s) × 4 style(s) would make 20"
    )
    assert (set(web.busy_job_ids()), web.stored_files()) == before


def test_a_bad_pair_or_a_bad_image_is_refused_with_nothing_stored(web: InProcessWeb) -> None:
    before = set(web.busy_job_ids()), web.stored_files()
    with web.client as client:
        bad_pair = post_batch(client, contents=1, styles=2, pairs="1:3")
        files = [
            ("content", ("a.png", png_bytes(40, 30, seed=1), "image/png")),
            ("content", ("b.png", b"not an image at all", "image/png")),
            ("style", ("s.png", png_bytes(32, 32, seed=2), "image/png")),
        ]
        bad_image = client.post("/api/batches", files=files, data={"size": "32", "iterations": "3"})
        blend = post_batch(client, contents=1, styles=2, style_blend="0.5,0.5")

    assert bad_pair.status_code == 422 and bad_pair.json()["detail"].startswith("pairs: 1:3 names no image")
    assert bad_image.status_code == 415 and bad_image.json()["detail"].startswith("content: ")
    assert blend.status_code == 422 and blend.json()["detail"].startswith("style_blend: has 2 weights but 1")
    assert (set(web.busy_job_ids()), web.stored_files()) == before


def test_cancel_needs_the_batch_token_and_cancels_every_unfinished_job(web: InProcessWeb) -> None:
    with web.client as client:
        created = post_batch(client, contents=2, styles=1).json()
    with web.stranger() as stranger:
        assert stranger.post(f"/api/batches/{created['id']}/cancel").status_code == 403
        response = stranger.post(
            f"/api/batches/{created['id']}/cancel", headers={"X-Job-Token": created["token"]}
        )
        again = stranger.post(
            f"/api/batches/{created['id']}/cancel", headers={"X-Job-Token": created["token"]}
        )
        one_job = stranger.post(
            f"/api/jobs/{created['jobs'][0]}/cancel", headers={"X-Job-Token": created["token"]}
        )

    assert response.status_code == 200
    assert response.json()["status"] == "finished" and response.json()["totals"]["cancelled"] == 2
    assert again.status_code == 409
    assert one_job.status_code == 409  # the batch's token is each job's token too


def test_the_same_idempotency_key_returns_the_same_batch(web: InProcessWeb) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    with web.client as client:
        first = post_batch(client, contents=2, styles=1, headers=key)
        again = post_batch(client, contents=2, styles=1, headers=key)
        other = post_batch(client, contents=2, styles=1, headers=key, iterations=4)

    assert (first.status_code, again.status_code, other.status_code) == (202, 200, 422)
    assert again.json() == first.json()
    assert other.json()["detail"].startswith("Idempotency-Key: this key was used for a different request")
    cancel_all(web)


def test_an_unknown_batch_is_404(web: InProcessWeb) -> None:
    with web.client as client:
        assert client.get(f"/api/batches/{'0' * 32}").json() == {"detail": "Batch not found"}
        assert client.get("/batches/nope").status_code == 404


def test_library_paintings_join_a_batch_by_id_in_form_order_and_credit_their_jobs(web: InProcessWeb) -> None:
    files = [
        ("content", ("photo.png", png_bytes(40, 30, seed=50), "image/png")),
        ("style_id", (None, "hokusai-great-wave")),
        ("style", ("paint.png", png_bytes(32, 32, seed=70), "image/png")),
    ]
    with web.client as client:
        response = client.post("/api/batches", files=files, data={"size": "32", "iterations": "3"})
        assert response.status_code == 202, response.text
        status = client.get(response.json()["status_url"]).json()

    assert status["styles"] == ["hokusai-great-wave", "paint"]
    first, second = (web.status(job["id"]) for job in status["jobs"])
    assert first["style_credits"][0]["title"] == "The Great Wave off Kanagawa"
    assert second["style_credits"] == [None]
    cancel_all(web)


def test_an_unknown_painting_id_refuses_the_batch_naming_it_and_stores_nothing(web: InProcessWeb) -> None:
    before = web.stored_files()
    files = [
        ("content", ("photo.png", png_bytes(40, 30, seed=50), "image/png")),
        ("style_id", (None, "no-such-painting")),
    ]
    with web.client as client:
        response = client.post("/api/batches", files=files, data={"size": "32", "iterations": "3"})

    assert response.status_code == 422
    assert "no-such-painting" in response.json()["detail"] and "style_id" in response.json()["detail"]
    assert web.stored_files() == before
