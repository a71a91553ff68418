"""Measuring the resource figures of issue 20 on real processes, for tests/reliability/test_resource_faults.py
and bench/resources.py alike (the same code, so the documented figures are what the test asserts).

- Memory from /proc/PID/status: VmRSS now, VmHWM the peak; writing 5 to /proc/PID/clear_refs resets the
  peak to the current RSS (Linux 4.0+), so each measurement starts from where the process is.
- Uploads sent over a raw socket at a fixed rate, noting when the answer comes and how many bytes had been
  sent by then: what a client on a 10 MB/s line sees of an early refusal.

Every submission names its client in X-Forwarded-For (uvicorn trusts it from loopback, as behind the
proxy), so one web process can count clients apart: the rate-limited client is one of them.
"""

from __future__ import annotations

import functools
import io
import re
import select
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from PIL import Image

from tests.support.images import png_bytes
from tests.support.stack import Stack

MB = 1_000_000
MIB = 1024 * 1024
FLAT_SIDE = 7999  # 63.98 MP: within the default 64 MP limit
LINE_RATE = 10 * MB  # bytes a second: the client's line for the refusal timings
# The production defaults of the upload limits (the test stacks' TEST_ENV lowers them).
DEFAULT_LIMITS = {"ATELIER_MAX_UPLOAD_BYTES": str(50 * MIB), "ATELIER_MAX_UPLOAD_PIXELS": "64000000"}
# The web measured alone (no worker: jobs stay queued), with a rate limit low enough to reach quickly.
WEB_ENV = {**DEFAULT_LIMITS, "ATELIER_RATE_LIMIT_PER_MINUTE": "2"}


@functools.cache
def flat_png(side: int = FLAT_SIDE) -> bytes:
    """A one-colour PNG of side x side pixels: 64 MP in about 200 kB."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (40, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


def proc_status(pid: int, field: str) -> int:
    """A memory field of /proc/PID/status (VmRSS, VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    """VmHWM from now on: the peak after this moment (starts at the current RSS)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def submit(stack: Stack, content: bytes, style: bytes, client_ip: str, **options: object) -> httpx.Response:
    """POST /api/jobs as client_ip (X-Forwarded-For)."""
    files = [("content", ("content.png", content, "image/png")), ("style", ("style.png", style, "image/png"))]
    data = {name: str(value) for name, value in options.items()}
    with httpx.Client(base_url=stack.base_url, timeout=120) as client:
        return client.post("/api/jobs", files=files, data=data, headers={"X-Forwarded-For": client_ip})


@dataclass(frozen=True)
class WebMemory:
    start_rss: int  # after a warm-up submission
    peak_increase: int  # VmHWM during the concurrent submissions minus start_rss
    after_rss: int  # once they are answered
    statuses: list[int]

    @property
    def after_increase(self) -> int:
        return self.after_rss - self.start_rss


def web_memory_for_flat_uploads(stack: Stack, concurrent: int = 4) -> WebMemory:
    """The web's peak and settled RSS while `concurrent` clients each submit the flat 64 MP PNG as content
    and style at once (each from its own address: the rate limit is not what is measured)."""
    pid = stack.processes["web"].popen.pid
    image = flat_png()
    warm = submit(stack, png_bytes(64, 64, seed=1), png_bytes(64, 64, seed=2), "10.20.0.1", size=64)
    assert warm.status_code == 202, warm.text
    time.sleep(0.5)
    start = proc_status(pid, "VmRSS")
    reset_peak(pid)
    with ThreadPoolExecutor(concurrent) as pool:
        answers = list(
            pool.map(lambda n: submit(stack, image, image, f"10.20.1.{n}", size=64), range(1, concurrent + 1))
        )
    peak = proc_status(pid, "VmHWM")
    time.sleep(1.0)  # the answers are sent; what the process still holds now it keeps
    return WebMemory(
        start, peak - start, proc_status(pid, "VmRSS"), [answer.status_code for answer in answers]
    )


@dataclass(frozen=True)
class EarlyAnswer:
    status: int | None  # None: the connection was reset before the answer could be read
    seconds: float  # from the first byte of the request to the answer (or the reset)
    bytes_sent: int  # of the body (multipart framing included), when the answer came


def multipart_head(boundary: str, field: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{field}.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()


def upload_at_line_rate(stack: Stack, file_bytes: int, client_ip: str, rate: int = LINE_RATE) -> EarlyAnswer:
    """POST /api/jobs with a content part of file_bytes (zeros), sent at `rate` bytes a second until the
    server answers; the status and when it came."""
    boundary = f"atelier-{uuid.uuid4().hex}"
    head = multipart_head(boundary, "content")
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(head) + file_bytes + len(tail)
    url = urlsplit(stack.base_url)
    request = (
        f"POST /api/jobs HTTP/1.1\r\nHost: {url.netloc}\r\nX-Forwarded-For: {client_ip}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    chunk = b"\0" * 65536
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    with sock:
        started = time.monotonic()
        sock.sendall(request + head)
        sent = 0
        while True:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                return EarlyAnswer(_status(sock), time.monotonic() - started, len(head) + sent)
            due = min(file_bytes, int((time.monotonic() - started) * rate))
            if sent >= file_bytes:
                sock.sendall(tail)
                return EarlyAnswer(_status(sock), time.monotonic() - started, length)
            if sent >= due:
                time.sleep(0.002)
                continue
            try:
                sock.sendall(chunk[: min(len(chunk), due - sent)])
            except (BrokenPipeError, ConnectionResetError):
                return EarlyAnswer(_status(sock), time.monotonic() - started, len(head) + sent)
            sent += min(len(chunk), due - sent)


def _status(sock: socket.socket) -> int | None:
    try:
        line = sock.recv(65536).split(b"\r\n", 1)[0]
    except (ConnectionResetError, BrokenPipeError, TimeoutError):
        return None
    parts = line.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


# app/admission.py's log line of a file part cut off as it streamed.
REFUSED_413 = re.compile(r"submission refused while streaming \(413\) after (\d+) bytes of the body")


def bytes_read_at_413(stack: Stack) -> list[int]:
    """Bytes of the body the web had read when it refused each file part so far (its log, in order)."""
    log = stack.processes["web"].log_path.read_text(errors="replace")
    return [int(count) for count in REFUSED_413.findall(log)]


def exhaust_rate_limit(stack: Stack, client_ip: str) -> None:
    """Submit small jobs as client_ip until the web answers 429."""
    for _ in range(1000):
        answer = submit(stack, png_bytes(32, 32, seed=5), png_bytes(32, 32, seed=6), client_ip, size=32)
        if answer.status_code == 429:
            return
        assert answer.status_code == 202, answer.text
    raise AssertionError("no 429 after 1000 submissions")


@dataclass(frozen=True)
class WorkerMemory:
    small_peak: int  # VmHWM of the worker during a job with 64 px uploads, size=64
    flat_peak: int  # the same job with the flat 64 MP uploads

    @property
    def ratio(self) -> float:
        return self.flat_peak / self.small_peak


def worker_peak(stack: Stack, content: bytes, style: bytes, client_ip: str, iterations: int) -> int:
    pid = stack.processes["worker"].popen.pid
    reset_peak(pid)
    answer = submit(stack, content, style, client_ip, size=64, iterations=iterations)
    assert answer.status_code == 202, answer.text
    final = stack.wait_for(answer.json()["id"], {"succeeded", "failed", "cancelled"}, timeout=180)
    assert final["status"] == "succeeded", final
    return proc_status(pid, "VmHWM")


def worker_memory_for_flat_uploads(stack: Stack, iterations: int = 10) -> WorkerMemory:
    """The worker's peak for a size=64 job from 64 px uploads, then from the flat 64 MP ones (after a
    warm-up job that pays TensorFlow's start and the 64 px step's compilation)."""
    small = png_bytes(64, 64, seed=8), png_bytes(64, 64, seed=9)
    worker_peak(stack, *small, "10.30.0.1", iterations)
    small_peak = worker_peak(stack, *small, "10.30.0.2", iterations)
    flat_peak = worker_peak(stack, flat_png(), flat_png(), "10.30.0.3", iterations)
    return WorkerMemory(small_peak, flat_peak)
