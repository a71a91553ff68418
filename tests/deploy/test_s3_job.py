"""Jobs with S3 storage on one stack, whose web and worker processes share nothing but Redis and the
bucket: a real moto server behind tests/support/s3_faults.py, a proxy that passes every request through
until a test tells it to fail some.

One job runs end to end and the web serves its result from the bucket. Then S3 fails and recovers under
a running job: the proxy answers 503 SlowDown to every write of the job's result for a while (the
finished image is then kept in the checkpoint, and moving it to the result fails the same way), then lets
them through. The person sees the job wait for storage, naming the S3 error; it then succeeds without a
step computed again, and the bucket never holds more than one checkpoint and one result of it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import S3Server
from tests.support.images import image_format, image_size, png_bytes
from tests.support.s3_faults import FailingS3
from tests.support.stack import Stack, start_stack

ITERATIONS = 20


@pytest.fixture(scope="module")
def failing_s3(s3_server: S3Server) -> Iterator[FailingS3]:
    with FailingS3(s3_server.endpoint_url) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def s3_stack(
    s3_server: S3Server, failing_s3: FailingS3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, str]]:
    bucket = s3_server.new_bucket()
    env = {
        "ATELIER_STORAGE_URL": f"s3://{bucket}/atelier",
        "ATELIER_S3_ENDPOINT_URL": failing_s3.endpoint_url,
        "ATELIER_S3_REGION": s3_server.region,
        "ATELIER_S3_ACCESS_KEY_ID": s3_server.access_key_id,
        "ATELIER_S3_SECRET_ACCESS_KEY": s3_server.secret_access_key,
        "ATELIER_STORAGE_RETRY_SECONDS": "120",
        "ATELIER_CHECKPOINT_EVERY": "5",
    }
    base: Path = tmp_path_factory.mktemp("s3-jobs")
    with start_stack(base, env) as stack:
        yield stack, bucket


def job_objects(s3_server: S3Server, bucket: str, job_id: str) -> list[str]:
    listed = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=f"atelier/jobs/{job_id}/")
    return sorted(item["Key"].rsplit("/", 1)[1] for item in listed.get("Contents", []))


def test_job_runs_with_s3_storage_and_the_web_serves_its_result(
    s3_stack: tuple[Stack, str], s3_server: S3Server
) -> None:
    stack, bucket = s3_stack
    response = stack.submit(png_bytes(80, 60, seed=5), [png_bytes(64, 64, seed=6)], size=64, iterations=12)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    final = stack.wait_for(job_id, {"succeeded", "failed", "cancelled"})

    assert final["status"] == "succeeded", final
    with stack.client as client:
        result = client.get(final["result_url"])
        preview = client.get(final["preview_url"])
    assert result.status_code == 200 and image_format(result.content) == "PNG"
    assert image_size(result.content) == (64, 48)
    assert preview.status_code == 200 and image_format(preview.content) == "JPEG"

    listed = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=f"atelier/jobs/{job_id}/")
    keys = {item["Key"].rsplit("/", 1)[1] for item in listed.get("Contents", [])}
    assert {"content.png", "style-0.png", "result.png", "preview.jpg"} <= keys
    stored = s3_server.client().get_object(Bucket=bucket, Key=f"atelier/jobs/{job_id}/result.png")
    assert stored["Body"].read() == result.content
    assert stack.stored_files() == set(), "S3 storage wrote job files to the local directory"


def test_a_throttled_bucket_then_recovered_ends_in_the_result_without_recomputing(
    s3_stack: tuple[Stack, str], s3_server: S3Server, failing_s3: FailingS3
) -> None:
    stack, bucket = s3_stack
    failing_s3.fail_writes_to("/result.png")
    try:
        # The plain job's size (64x48): the worker's compiled step is reused.
        response = stack.submit(
            png_bytes(80, 60, seed=70), [png_bytes(64, 64, seed=71)], size=64, iterations=ITERATIONS
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        seen: list[list[str]] = []

        def waiting_for_storage(status: dict[str, Any]) -> bool:
            seen.append(job_objects(s3_server, bucket, job_id))
            assert status["status"] not in ("succeeded", "failed", "cancelled"), status
            return bool(status["storage_wait"])

        deadline = time.monotonic() + 90
        waiting = stack.status(job_id)
        while not waiting_for_storage(waiting):
            assert time.monotonic() < deadline, waiting
            time.sleep(0.1)
            waiting = stack.status(job_id)
        assert waiting["status"] == "running" and waiting["step"] == ITERATIONS, waiting
        assert waiting["storage_wait"] == "waiting for storage: S3 answered 503 SlowDown"
        with stack.client as client:
            page = client.get(f"/jobs/{job_id}").text
        assert "Waiting for storage: S3 answered 503 SlowDown." in page
        time.sleep(1.0)  # a retry or two more against the throttled bucket
        seen.append(job_objects(s3_server, bucket, job_id))
        # The finished image is kept in the checkpoint while the result cannot be written.
        assert "checkpoint.png" in seen[-1] and "result.png" not in seen[-1], seen[-1]
    finally:
        failing_s3.recover()

    final = stack.wait_for(job_id, {"succeeded", "failed", "cancelled"}, timeout=60)

    assert final["status"] == "succeeded", final
    assert final["stats"]["steps"] == ITERATIONS and final["storage_wait"] is None, final
    refused = [request for request in failing_s3.refused if job_id in request]
    assert len(refused) >= 4, refused  # the result's PUT and the checkpoint's copy, each retried
    log = stack.processes["worker"].tail(2000)
    assert log.count(f"job {job_id}: done after") == 1  # the engine ran once: no step computed again
    assert job_objects(s3_server, bucket, job_id) == [
        "content.png",
        "preview.jpg",
        "result.png",
        "style-0.png",
    ]
    # Every listing taken while it failed: the uploads, a preview, one checkpoint, no other copy of the image.
    allowed = {"content.png", "style-0.png", "preview.jpg", "checkpoint.png", "result.png"}
    assert all(set(names) <= allowed for names in seen), seen
    with stack.client as client:
        result = client.get(final["result_url"])
    assert result.status_code == 200 and image_format(result.content) == "PNG"
