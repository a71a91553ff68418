"""One job end to end with S3 storage: web and worker processes share nothing but Redis and the bucket."""

from __future__ import annotations

from collections.abc import Callable

from tests.deploy.conftest import S3Server
from tests.support.images import image_format, image_size, png_bytes
from tests.support.stack import Stack


def test_job_runs_with_s3_storage_and_the_web_serves_its_result(
    s3_server: S3Server, stack_factory: Callable[..., Stack]
) -> None:
    bucket = s3_server.new_bucket()
    stack = stack_factory(
        "s3",
        {
            "ATELIER_STORAGE_URL": f"s3://{bucket}/atelier",
            "ATELIER_S3_ENDPOINT_URL": s3_server.endpoint_url,
            "ATELIER_S3_REGION": s3_server.region,
            "ATELIER_S3_ACCESS_KEY_ID": s3_server.access_key_id,
            "ATELIER_S3_SECRET_ACCESS_KEY": s3_server.secret_access_key,
        },
    )

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
