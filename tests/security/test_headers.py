"""Security headers on every response, and images served with their true content type."""

from __future__ import annotations

import socket

import pytest

from app.security import CONTENT_SECURITY_POLICY
from tests.security.helpers import CONTENT, STYLE, stranger
from tests.support.images import image_format
from tests.support.stack import Stack

UNKNOWN = "0123456789abcdef0123456789abcdef"
EXPECTED = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def assert_security_headers(response) -> None:  # noqa: ANN001 - an httpx.Response
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, f"{response.request.url}: {name}"


def test_the_policy_forbids_inline_script_framing_and_foreign_origins() -> None:
    directives = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'self'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 200),
        ("GET", "/healthz", 200),
        ("GET", "/openapi.json", 200),
        ("GET", "/static/css/app.css", 200),
        ("GET", f"/api/jobs/{UNKNOWN}", 404),
        ("GET", f"/jobs/{UNKNOWN}", 404),
        ("GET", "/no/such/page", 404),
        ("POST", "/api/jobs", 422),
        ("DELETE", "/healthz", 405),
    ],
)
def test_every_response_carries_the_security_headers(
    web_only: Stack, method: str, path: str, status: int
) -> None:
    with stranger(web_only) as client:
        response = client.request(method, path)
    assert response.status_code == status
    assert_security_headers(response)


def test_a_body_refused_before_it_is_read_carries_them_too(web_process: Stack) -> None:
    # Announce 1 GB and send none of it: the answer comes from the headers alone (a real socket).
    host, port = web_process.base_url.removeprefix("http://").split(":")
    request = (
        f"POST /api/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        "Content-Length: 1000000000\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request.encode())
        head = connection.recv(65536).decode("latin-1").split("\r\n\r\n", 1)[0].lower()
    assert head.startswith("http/1.1 413")
    for name, value in EXPECTED.items():
        assert f"{name}: {value.lower()}" in head


def test_the_api_docs_page_gets_its_own_policy_and_still_forbids_framing(web_only: Stack) -> None:
    with stranger(web_only) as client:
        response = client.get("/docs")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "https:" not in policy  # no CDN: its own files
    assert response.headers["x-content-type-options"] == "nosniff"


def test_images_are_served_with_their_true_type_and_no_user_supplied_name(stack: Stack) -> None:
    files = [
        ("content", ('"; evil=".html', CONTENT, "text/html")),
        ("style", ("style.svg", STYLE, "image/svg+xml")),
    ]
    with stack.client as client:
        options = {"size": 32, "iterations": 3, "preview_every": 1}
        submitted = client.post("/api/jobs", files=files, data=options)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    final = stack.wait_for(job_id, {"succeeded", "failed"}, timeout=60)
    assert final["status"] == "succeeded", final

    with stranger(stack) as client:
        served = {
            "result": client.get(f"/api/jobs/{job_id}/result"),
            "preview": client.get(f"/api/jobs/{job_id}/preview"),
            "content": client.get(f"/api/jobs/{job_id}/content"),
        }
    expected_types = {
        "result": ("image/png", "PNG"),
        "preview": ("image/jpeg", "JPEG"),
        "content": ("image/png", "PNG"),
    }
    for name, response in served.items():
        media_type, pillow_format = expected_types[name]
        assert response.status_code == 200, name
        assert response.headers["content-type"] == media_type, name
        assert image_format(response.content) == pillow_format, name
        assert_security_headers(response)
    assert served["result"].headers["content-disposition"] == f'inline; filename="atelier-{job_id}.png"'
