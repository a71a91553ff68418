"""The compose `proxy` for real: Debian's nginx with the site docker/proxy/render-conf.sh renders (the script
and files the image runs), in a temporary prefix in front of a real stack (uvicorn, Celery worker, Redis).

A client that sends its headers slowly and one that stalls in the middle of its body are both cut off within
the proxy's timeouts, while a normal job submitted through the proxy succeeds and its events stream through
as they happen. The timeouts are the template's settings, made short here (the defaults, 10 s and 15 s, are
checked by tests/deploy/test_compose.py); the body limit is the web's own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.main import FORM_OVERHEAD_BYTES
from tests.support.images import image_format, png_bytes
from tests.support.stack import Process, Stack, free_port, spawn

PROXY_DIR = Path(__file__).resolve().parents[2] / "docker" / "proxy"
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 3.0
# nginx checks its timers when something happens or every few hundred ms: a close this much late is on time.
SLACK = 1.5
GIVE_UP_SECONDS = 20  # a connection still open this long was not cut off at all


@dataclass
class Proxy:
    url: str
    port: int
    site_conf: str
    process: Process


@pytest.fixture(scope="module")
def proxy(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).is_file(), "nginx is not installed (make system-deps installs Debian's nginx)"
    prefix = tmp_path_factory.mktemp("proxy")
    port = free_port()
    env = {
        **os.environ,
        "ATELIER_PROXY_UPSTREAM": urlsplit(stack.base_url).netloc,
        "ATELIER_PROXY_PORT": f"127.0.0.1:{port}",
        "ATELIER_PROXY_HEADER_TIMEOUT": f"{HEADER_TIMEOUT:.0f}s",
        "ATELIER_PROXY_BODY_TIMEOUT": f"{BODY_TIMEOUT:.0f}s",
        "ATELIER_PROXY_SEND_TIMEOUT": "5s",
        # The stack's upload limits, as compose passes the web's to the proxy.
        "ATELIER_MAX_UPLOAD_BYTES": stack.env["ATELIER_MAX_UPLOAD_BYTES"],
    }
    subprocess.run([str(PROXY_DIR / "render-conf.sh"), str(prefix)], env=env, check=True, timeout=30)
    conf = prefix / "conf" / "nginx.conf"
    # As docker/proxy/start-proxy.sh runs it, in the foreground. The test runs as root, so nginx's workers
    # run as nobody (the image's as www-data); the site writes nothing to the prefix they could not reach.
    process = spawn(
        "nginx",
        [nginx, "-p", f"{prefix}/", "-c", str(conf), "-e", "stderr", "-g", "daemon off;"],
        env,
        prefix,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            process.check_alive()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"nginx not listening:\n{process.tail()}"
                time.sleep(0.05)
        yield Proxy(f"http://127.0.0.1:{port}", port, (prefix / "conf" / "site.conf").read_text(), process)
    finally:
        process.stop()


def seconds_until_closed(
    sock: socket.socket, started: float, drip: bytes = b"", every: float = 0.25
) -> tuple[float, bytes]:
    """Wait until the server closes the connection (sending drip, one byte at a time, every `every` s
    meanwhile); the seconds since started, and whatever the server answered before closing."""
    answer = b""
    sock.settimeout(every)
    unsent = list(drip)
    while time.monotonic() - started < GIVE_UP_SECONDS:
        try:
            if unsent:
                sock.sendall(bytes([unsent.pop(0)]))
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - started, answer
        if not chunk:
            return time.monotonic() - started, answer
        answer += chunk
    raise AssertionError(f"still open after {time.monotonic() - started:.1f} s; answered {answer[:200]!r}")


def slow_headers(port: int) -> tuple[float, bytes]:
    """A request line and headers sent a byte every 0.25 s (a slowloris): never a complete header."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    with sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        return seconds_until_closed(sock, started, drip=b"Host: atelier\r\nX-Slow: " + b"a" * 400)


def stalled_body(port: int) -> tuple[float, bytes]:
    """An upload whose headers promise 200 kB, of which the first kilobyte comes; then nothing."""
    boundary = "atelier-stall"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="c.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode() + png_bytes(32, 32, seed=3)[:600]
    request = (
        "POST /api/jobs HTTP/1.1\r\nHost: atelier\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 200000\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    with sock:
        sock.sendall(request + head)
        return seconds_until_closed(sock, time.monotonic())


def job_through_the_proxy(
    stack: Stack, proxy: Proxy
) -> tuple[list[tuple[dict[str, Any], str]], httpx.Response, httpx.Response]:
    """Submit a small job through the proxy and follow its event stream there until the job ends: every
    status event with the job's status at the web (asked directly) when it arrived, the last stream and
    the result, both through the proxy."""
    files = [
        ("content", ("content.png", png_bytes(64, 64, seed=11), "image/png")),
        ("style", ("style.png", png_bytes(64, 64, seed=12), "image/png")),
    ]
    events: list[tuple[dict[str, Any], str]] = []
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        response = client.post("/api/jobs", files=files, data={"size": "64", "iterations": "60"})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        ended = False
        while not ended:
            # A stream ends after ATELIER_EVENT_STREAM_SECONDS; the browser reconnects, and so does this.
            with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
                assert stream.status_code == 200
                for line in stream.iter_lines():
                    if line == "event: end":
                        ended = True
                    elif line.startswith("data:") and not ended:
                        status = json.loads(line.removeprefix("data:"))
                        events.append((status, stack.status(job_id)["status"]))
        result = client.get(events[-1][0]["result_url"] or "/no-result")
    return events, stream, result


def test_slow_clients_are_cut_off_within_the_timeouts_while_a_job_runs_through_the_proxy(
    stack: Stack, proxy: Proxy
) -> None:
    with ThreadPoolExecutor(2) as pool:
        headers = pool.submit(slow_headers, proxy.port)
        body = pool.submit(stalled_body, proxy.port)
        events, stream, result = job_through_the_proxy(stack, proxy)
        header_seconds, header_answer = headers.result()
        body_seconds, body_answer = body.result()

    assert HEADER_TIMEOUT - 0.5 <= header_seconds <= HEADER_TIMEOUT + SLACK, header_seconds
    assert header_answer == b""  # nginx closes a connection whose header never came without an answer
    assert BODY_TIMEOUT - 0.5 <= body_seconds <= BODY_TIMEOUT + SLACK, body_seconds
    assert not body_answer.startswith(b"HTTP/1.1 202"), body_answer[:200]

    final = events[-1][0]
    assert final["status"] == "succeeded" and final["stats"]["steps"] == 60, final
    assert result.status_code == 200 and image_format(result.content) == "PNG"
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["x-accel-buffering"] == "no"
    # Unbuffered: events reached the client while the job was still running at the web.
    running = [status for status, at_web in events if status["status"] == "running" and at_web == "running"]
    assert len({status["step"] for status in running}) >= 2, events


def test_the_proxy_refuses_a_body_over_the_web_s_limit_before_reading_it(stack: Stack, proxy: Proxy) -> None:
    max_upload = int(stack.env["ATELIER_MAX_UPLOAD_BYTES"])
    styles = int(stack.env.get("ATELIER_MAX_STYLE_IMAGES", "4"))
    limit = (styles + 1) * max_upload + FORM_OVERHEAD_BYTES  # the web's own (app/main.py)
    assert re.search(rf"client_max_body_size {limit};", proxy.site_conf)
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    with sock:
        started = time.monotonic()
        sock.sendall(
            b"POST /api/jobs HTTP/1.1\r\nHost: atelier\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            + f"Content-Length: {limit + 1}\r\n\r\n".encode()
        )
        answer = sock.recv(65536)  # no byte of the body sent: the answer comes from the header alone
        seconds = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 413") and b"Server: nginx" in answer, answer[:300]
    assert seconds < 1.0
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        health = client.get("/healthz")
    assert health.status_code == 200 and health.headers["server"] == "nginx"
