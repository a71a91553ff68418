"""Resource figures of issue 20: the web's and the worker's memory for 64 MP uploads, and how early a
refused upload is answered. `make bench-resources` (about a minute).

    python bench/resources.py

Starts real processes in a temporary directory (tests/support/stack.py: uvicorn alone, then a stack with
redis-server and a Celery worker, random VGG19 weights), with the default upload limits (50 MiB a file,
64 MP), and measures them as tests/reliability/test_resource_faults.py does (tests/support/resources.py):

- web: VmHWM of the uvicorn process (/proc/PID/status, reset through clear_refs) while 4 clients each submit
  a flat 7999x7999 PNG as content and style at once, over its RSS after a warm-up submission; its RSS once
  they are answered;
- worker: its VmHWM for a size=64 job from those uploads, and from 64 px ones;
- refusals: a rate-limited client's 52 MB upload and a 60 MB file, each sent at 10 MB/s over a raw socket:
  when the answer came and how much of the body had been sent.

Targets (issue 20): peak increase <= 400 MB, RSS after within 100 MB of the start, worker <= 1.5x,
429 within 0.5 s with < 1 MB sent, 413 within the first 51 MiB. Writes JSON under bench/results/.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from tests.support.resources import (  # noqa: E402  (after the path is set)
    DEFAULT_LIMITS,
    MB,
    MIB,
    WEB_ENV,
    bytes_read_at_413,
    exhaust_rate_limit,
    upload_at_line_rate,
    web_memory_for_flat_uploads,
    worker_memory_for_flat_uploads,
)
from tests.support.stack import start_stack  # noqa: E402


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def row(what: str, value: str, target: str, met: bool) -> str:
    return f"{what:<58} {value:>14}  {target:<16} {'ok' if met else 'MISSED'}"


def main() -> int:
    rows: list[str] = []
    figures: dict[str, float | int | None] = {}
    with tempfile.TemporaryDirectory(prefix="atelier-bench-") as base:
        with start_stack(Path(base) / "web", WEB_ENV, worker=False) as web:
            memory = web_memory_for_flat_uploads(web, concurrent=4)
            exhaust_rate_limit(web, "10.20.3.1")
            limited = upload_at_line_rate(web, 52 * MB, "10.20.3.1")
            too_large = upload_at_line_rate(web, 60 * MB, "10.20.4.1")
            read_at_413 = (bytes_read_at_413(web) or [None])[-1]
        with start_stack(Path(base) / "worker", DEFAULT_LIMITS) as stack:
            worker = worker_memory_for_flat_uploads(stack)
    figures |= {
        "web_start_rss_mb": memory.start_rss / MB,
        "web_peak_increase_mb": memory.peak_increase / MB,
        "web_after_increase_mb": memory.after_increase / MB,
        "worker_small_peak_mb": worker.small_peak / MB,
        "worker_flat_peak_mb": worker.flat_peak / MB,
        "worker_ratio": worker.ratio,
        "rate_limited_status": limited.status,
        "rate_limited_seconds": limited.seconds,
        "rate_limited_sent_mb": limited.bytes_sent / MB,
        "too_large_status": too_large.status,
        "too_large_seconds": too_large.seconds,
        "too_large_sent_mib": too_large.bytes_sent / MIB,
        "too_large_read_by_web_mib": None if read_at_413 is None else read_at_413 / MIB,
    }
    rows += [
        row(
            "web: RSS at the start (after a warm-up submission)", f"{memory.start_rss / MB:.0f} MB", "", True
        ),
        row(
            "web: peak RSS increase, 4 concurrent 64 MP content+style",
            f"{memory.peak_increase / MB:.0f} MB",
            "<= 400 MB",
            memory.peak_increase <= 400 * MB and memory.statuses == [202] * 4,
        ),
        row(
            "web: RSS after them, over the start",
            f"{memory.after_increase / MB:+.0f} MB",
            "<= 100 MB",
            memory.after_increase <= 100 * MB,
        ),
        row("worker: peak, size=64 job from 64 px uploads", f"{worker.small_peak / MB:.0f} MB", "", True),
        row(
            "worker: peak, size=64 job from the 64 MP uploads",
            f"{worker.flat_peak / MB:.0f} MB ({worker.ratio:.2f}x)",
            "<= 1.5x",
            worker.ratio <= 1.5,
        ),
        row(
            f"429 for a rate-limited 52 MB upload at 10 MB/s ({limited.status or 'reset'})",
            f"{limited.seconds * 1000:.0f} ms, {limited.bytes_sent / MB:.2f} MB",
            "<= 0.5 s, < 1 MB",
            limited.seconds <= 0.5 and limited.bytes_sent < MB and limited.status in (429, None),
        ),
        row(
            f"413 for a 60 MB file at 10 MB/s ({too_large.status or 'reset'}): sent",
            f"{too_large.seconds:.1f} s, {too_large.bytes_sent / MIB:.2f} MiB",
            "",
            too_large.status in (413, None),
        ),
        row(
            "    of it read by the web (its log)",
            "?" if read_at_413 is None else f"{read_at_413 / MIB:.2f} MiB",
            "<= 51 MiB",
            read_at_413 is not None and read_at_413 <= 51 * MIB,
        ),
    ]
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}")
    print("\n".join(rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"resources-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    machine = {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform()}
    out.write_text(json.dumps({"machine": machine, "figures": figures}, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")
    return 0 if all(line.endswith(" ok") for line in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
