"""Only the submitter can cancel or delete a job: the token from POST /api/jobs (header, bearer or the
cookie the submission set); everybody else gets 403, unknown ids 404."""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.security.helpers import CONTENT, LONG_JOB, STYLE, stranger
from tests.support.stack import Stack

UNKNOWN = "0123456789abcdef0123456789abcdef"


def submit_long_job(stack: Stack) -> tuple[str, str]:
    response = stack.submit(CONTENT, [STYLE], **LONG_JOB)
    assert response.status_code == 202, response.text
    body = response.json()
    return body["id"], body["token"]


def test_the_token_is_returned_once_and_stored_only_as_a_hash(web_only: Stack) -> None:
    job_id, token = submit_long_job(web_only)

    assert len(token) >= 40  # 256 random bits, URL-safe
    with web_only.redis() as redis:
        record = redis.hgetall(f"atelier:job:{job_id}")
    assert record["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in "".join(record.values())
    status = web_only.status(job_id)
    assert token not in str(status) and "token" not in status

    with stranger(web_only) as client:
        assert client.post(f"/api/jobs/{job_id}/cancel", headers={"X-Job-Token": token}).status_code == 200


@pytest.mark.parametrize(
    "wrong",
    [
        {},
        {"X-Job-Token": "not-the-token"},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": "Basic not-the-token"},
        {"Cookie": "atelier_job_token=not-the-token"},
        {"X-Job-Token": ""},
    ],
    ids=["none", "wrong-header", "wrong-bearer", "basic", "wrong-cookie", "empty"],
)
def test_cancel_and_delete_without_the_right_token_are_403_and_change_nothing(
    web_only: Stack, wrong: dict[str, str]
) -> None:
    job_id, token = submit_long_job(web_only)

    with stranger(web_only) as client:
        cancel = client.post(f"/api/jobs/{job_id}/cancel", headers=wrong)
        delete = client.delete(f"/api/jobs/{job_id}", headers=wrong)
        after = client.get(f"/api/jobs/{job_id}").json()

    for response in (cancel, delete):
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/json"
        assert "only the submitter" in response.json()["detail"]
    assert after["status"] in ("queued", "running") and not after["cancel_requested"]
    assert f"jobs/{job_id}/content.png" in web_only.stored_files()
    with stranger(web_only) as client:
        assert client.post(f"/api/jobs/{job_id}/cancel", headers={"X-Job-Token": token}).status_code == 200


def test_the_token_of_another_job_does_not_cancel_this_one(web_only: Stack) -> None:
    first_id, first_token = submit_long_job(web_only)
    second_id, second_token = submit_long_job(web_only)

    with stranger(web_only) as client:
        crossed = client.post(f"/api/jobs/{second_id}/cancel", headers={"X-Job-Token": first_token})
        assert crossed.status_code == 403
        for job_id, token in ((second_id, second_token), (first_id, first_token)):
            response = client.post(f"/api/jobs/{job_id}/cancel", headers={"X-Job-Token": token})
            assert response.status_code == 200


@pytest.mark.parametrize("how", ["header", "bearer", "cookie"])
def test_the_submitter_cancels_with_the_token_in_any_of_its_forms(web_only: Stack, how: str) -> None:
    job_id, token = submit_long_job(web_only)
    headers = {"header": {"X-Job-Token": token}, "bearer": {"Authorization": f"Bearer {token}"}}

    if how == "cookie":  # the stack's client keeps the cookies POST /api/jobs set, like a browser
        with web_only.client as client:
            response = client.post(f"/api/jobs/{job_id}/cancel")
    else:
        with stranger(web_only) as client:
            response = client.post(f"/api/jobs/{job_id}/cancel", headers=headers[how])

    assert response.status_code == 200, response.text
    assert web_only.wait_for(job_id, {"cancelled"}, timeout=30)["status"] == "cancelled"


@pytest.mark.parametrize("job_id", [UNKNOWN, "nope", UNKNOWN.upper(), UNKNOWN + "0", "..%2F..%2Fetc"])
def test_unknown_or_malformed_ids_are_404_with_or_without_a_token(web_only: Stack, job_id: str) -> None:
    with stranger(web_only) as client:
        for headers in ({}, {"X-Job-Token": "whatever"}):
            assert client.post(f"/api/jobs/{job_id}/cancel", headers=headers).status_code == 404
            response = client.delete(f"/api/jobs/{job_id}", headers=headers)
            assert response.status_code == 404
            assert response.json()["detail"]  # "job not found", or no route at all for "../.."


def test_delete_with_the_token_removes_the_record_and_every_file(stack: Stack) -> None:
    submitted = stack.submit(CONTENT, [STYLE], size=32, iterations=2, preview_every=1)
    job_id, token = submitted.json()["id"], submitted.json()["token"]
    assert stack.wait_for(job_id, {"succeeded", "failed"}, timeout=60)["status"] == "succeeded"
    files = {path for path in stack.stored_files() if job_id in path}
    assert {f"jobs/{job_id}/content.png", f"jobs/{job_id}/result.png"} <= files

    with stranger(stack) as client:
        assert client.delete(f"/api/jobs/{job_id}").status_code == 403
        assert {path for path in stack.stored_files() if job_id in path} == files
        deleted = client.delete(f"/api/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"})
        assert deleted.status_code == 204
        assert client.get(f"/api/jobs/{job_id}").status_code == 404
        assert client.get(f"/api/jobs/{job_id}/result").status_code == 404
        assert client.delete(f"/api/jobs/{job_id}", headers={"X-Job-Token": token}).status_code == 404
    assert {path for path in stack.stored_files() if job_id in path} == set()
    with stack.redis() as redis:
        assert list(redis.scan_iter(match=f"*{job_id}*")) == []
        assert redis.zscore("atelier:finished", job_id) is None


def test_delete_of_a_running_job_asks_to_cancel_first(stack: Stack) -> None:
    job_id, token = submit_long_job(stack)
    stack.wait_for(job_id, {"running"}, timeout=60)

    with stranger(stack) as client:
        response = client.delete(f"/api/jobs/{job_id}", headers={"X-Job-Token": token})
        assert response.status_code == 409
        assert "cancel it" in response.json()["detail"]
        assert client.post(f"/api/jobs/{job_id}/cancel", headers={"X-Job-Token": token}).status_code == 200
    stack.wait_for(job_id, {"cancelled"}, timeout=30)
    with stranger(stack) as client:
        assert client.delete(f"/api/jobs/{job_id}", headers={"X-Job-Token": token}).status_code == 204


def test_the_html_form_sets_httponly_strict_cookies_scoped_to_the_job(web_only: Stack) -> None:
    files = [("content", ("photo.png", CONTENT, "image/png")), ("style", ("style.png", STYLE, "image/png"))]
    with web_only.client as client:
        response = client.post("/jobs", data=LONG_JOB, files=files, follow_redirects=False)
    assert response.status_code == 303, response.text
    job_id = response.headers["location"].rsplit("/", 1)[1]

    cookies = response.headers.get_list("set-cookie")
    paths = sorted(re.search(r"[Pp]ath=([^;]+)", cookie).group(1) for cookie in cookies)
    assert paths == [f"/api/jobs/{job_id}", f"/jobs/{job_id}"]
    for cookie in cookies:
        assert cookie.startswith("atelier_job_token=")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")

    with stranger(web_only) as client:
        refused = client.post(f"/jobs/{job_id}/cancel", follow_redirects=False)
    assert refused.status_code == 403
    assert web_only.status(job_id)["status"] == "queued"

    with web_only.client as client:  # the submitting "browser" holds the cookie: the page's form works
        cancelled = client.post(f"/jobs/{job_id}/cancel", follow_redirects=False)
    assert cancelled.status_code == 303
    assert web_only.wait_for(job_id, {"cancelled"}, timeout=30)["status"] == "cancelled"
