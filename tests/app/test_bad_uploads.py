"""Bad submissions are refused with a 4xx JSON message; nothing is queued and nothing is stored.

In-process (the `web` fixture) except where uvicorn's own handling of the request is the point."""

from __future__ import annotations

import os

import pytest

from tests.support.images import flat_png_bytes, image_format, png_bytes
from tests.support.inprocess import InProcessWeb
from tests.support.stack import Stack

GOOD = png_bytes(48, 48, seed=30)
STYLE = png_bytes(48, 48, seed=31)
TRUNCATED = GOOD[: len(GOOD) // 2]
NOT_AN_IMAGE = b"%PDF-1.7 this is certainly not a picture\n" * 20
OVER_BYTE_LIMIT = os.urandom(1_000_001)  # the stack's ATELIER_MAX_UPLOAD_BYTES is 1_000_000
OVER_PIXEL_LIMIT = flat_png_bytes(1100, 1000)  # small file, 1.1 M pixels > ATELIER_MAX_UPLOAD_PIXELS


@pytest.mark.parametrize(
    ("content", "styles", "options", "status", "words"),
    [
        (NOT_AN_IMAGE, [STYLE], {}, 415, "content: not an image"),
        (GOOD, [NOT_AN_IMAGE], {}, 415, "style: not an image"),
        (TRUNCATED, [STYLE], {}, 422, "content: the image is truncated or corrupt"),
        (b"", [STYLE], {}, 400, "content: the file is empty"),
        (GOOD, [b""], {}, 400, "style: the file is empty"),
        (OVER_BYTE_LIMIT, [STYLE], {}, 413, "content: the file is larger than the limit"),
        (OVER_PIXEL_LIMIT, [STYLE], {}, 413, "over the limit of 1,000,000 pixels"),
        (png_bytes(10, 40), [STYLE], {}, 422, "each side must be at least 16 pixels"),
        (GOOD, [], {}, 422, "style: at least one style image is required"),
        (None, [STYLE], {}, 422, "content: a content image is required"),
        (GOOD, [STYLE] * 5, {}, 422, "at most 4 style images"),
        (GOOD, [STYLE], {"size": 16}, 422, "size: Input should be greater than or equal to 32"),
        (GOOD, [STYLE], {"size": 4096}, 422, "size: must be at most 1024 pixels"),
        (GOOD, [STYLE], {"iterations": 0}, 422, "iterations: Input should be greater than or equal to 1"),
        (GOOD, [STYLE], {"iterations": 10**6}, 422, "iterations: must be at most 2000"),
        (GOOD, [STYLE], {"content_weight": -1}, 422, "content_weight"),
        (GOOD, [STYLE], {"style_weight": "inf"}, 422, "style_weight"),
        (GOOD, [STYLE], {"tv_weight": "nan"}, 422, "tv_weight"),
        (GOOD, [STYLE], {"content_weight": 0, "style_weight": 0}, 422, "cannot both be 0"),
        (GOOD, [STYLE], {"optimizer": "sgd"}, 422, "optimizer"),
        (GOOD, [STYLE], {"preset": "ultra"}, 422, "preset"),
        (GOOD, [STYLE], {"style_blend": "0.5,0.5"}, 422, "style_blend: has 2 weights but 1 style image"),
        (GOOD, [STYLE], {"style_blend": "0"}, 422, "style_blend: needs at least one weight above 0"),
        (GOOD, [STYLE], {"iteration": 5}, 422, "unknown field(s): iteration"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_submission_is_refused_and_leaves_no_trace(
    web: InProcessWeb, content: bytes | None, styles: list[bytes], options: dict, status: int, words: str
) -> None:
    queued_before, files_before = web.queue_length(), web.stored_files()

    response = web.submit(content, styles, **options)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert words in response.json()["detail"]
    assert web.queue_length() == queued_before
    assert web.stored_files() == files_before


def test_body_over_the_total_limit_is_refused_before_it_is_read(web: InProcessWeb) -> None:
    queued_before, files_before = web.queue_length(), web.stored_files()
    huge = os.urandom(7_000_000)  # > (4 styles + 1) x 1 MB + 1 MB of form overhead

    response = web.submit(huge, [STYLE])

    assert response.status_code == 413
    assert "the request body is larger than the limit" in response.json()["detail"]
    assert web.queue_length() == queued_before
    assert web.stored_files() == files_before


def test_chunked_body_over_the_total_limit_is_cut_off(web_process: Stack) -> None:
    # Real uvicorn: how the server reads a body without Content-Length is the point.
    stack = web_process
    queued_before, files_before = stack.queue_length(), stack.stored_files()
    boundary = "atelier-test-boundary"

    def chunked_body():  # no Content-Length: the server has to count
        disposition = 'Content-Disposition: form-data; name="content"; filename="a.png"'
        yield f"--{boundary}\r\n{disposition}\r\n\r\n".encode()
        for _ in range(70):
            yield os.urandom(100_000)
        yield f"\r\n--{boundary}--\r\n".encode()

    with stack.client as client:
        response = client.post(
            "/api/jobs",
            content=chunked_body(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )

    assert response.status_code == 413
    # The file part passes its own limit (1 MB here) first: cut off as it streams (app/admission.py).
    assert response.json()["detail"] == "content: the file is larger than the limit of 1000000 bytes"
    assert stack.queue_length() == queued_before
    assert stack.stored_files() == files_before


def test_text_field_instead_of_a_file_is_refused_with_a_readable_message(web: InProcessWeb) -> None:
    with web.client as client:
        response = client.post(
            "/api/jobs", data={"content": "photo.png"}, files=[("style", ("s.png", STYLE))]
        )
    assert response.status_code == 422
    assert response.json()["detail"] == "content: must be a file (a multipart/form-data part with a filename)"


def test_type_and_name_are_not_trusted_only_the_decoded_bytes(web: InProcessWeb) -> None:
    files = [
        ("content", ("../../etc/passwd.txt", GOOD, "text/plain")),
        ("style", ("style.exe", STYLE, "application/octet-stream")),
    ]
    with web.client as client:
        response = client.post("/api/jobs", files=files, data={"size": "32", "iterations": "1"})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert web.status(job_id)["status"] == "queued"
    # Stored under the service's own names only, as the PNGs a worker reads (the job lifecycle tests
    # run such jobs to the end).
    assert {path for path in web.stored_files() if job_id in path} == {
        f"jobs/{job_id}/content.png",
        f"jobs/{job_id}/style-0.png",
    }
    assert image_format((web.storage_dir / "jobs" / job_id / "content.png").read_bytes()) == "PNG"
