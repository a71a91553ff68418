"""Soak: 40 tiny jobs from 8 concurrent clients all reach a final state, nothing leaks (Redis keys,
files) once their TTL has passed, and the worker's memory stays flat.

Not part of `make test` (pyproject's addopts ignore tests/soak): run it with `make soak`, bounded
to 10 minutes. The numbers go to tests/artifacts/soak-report.json.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.faults import rss_bytes
from tests.support.images import png_bytes
from tests.support.stack import Stack

CLIENTS = 8
JOBS_PER_CLIENT = 5
FINAL = {"succeeded", "failed", "cancelled"}
TTL_SECONDS = 5
REPORT = Path(__file__).resolve().parents[1] / "artifacts" / "soak-report.json"
# Keys that may outlive the jobs: worker heartbeats, kombu's queue bindings, per-minute rate counters
# (they expire by themselves within two minutes).
# Fleet-wide statistics (metrics:) are kept for good, like worker heartbeats; not per-job leftovers.
ALLOWED_KEY_PREFIXES = (
    "atelier:worker:last_seen",
    "_kombu.binding",
    "atelier:ratelimit:",
    "atelier:metrics:",
)

logger = logging.getLogger(__name__)


class Progress:
    """Final statuses seen by the clients, shared between threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.finals: dict[str, str] = {}
        self.errors: list[str] = []

    def record(self, job_id: str, status: str) -> None:
        with self.lock:
            self.finals[job_id] = status

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.finals)


def _client(stack: Stack, number: int, progress: Progress) -> None:
    """One user: submits a job, watches it to the end, submits the next."""
    try:
        with httpx.Client(base_url=stack.base_url, timeout=60) as client:
            for index in range(JOBS_PER_CLIENT):
                seed = 1000 + number * 10 + index
                response = client.post(
                    "/api/jobs",
                    files=[
                        ("content", ("c.png", png_bytes(80, 64, seed=seed), "image/png")),
                        ("style", ("s.png", png_bytes(32, 32, seed=seed + 5), "image/png")),
                    ],
                    # Six sizes, more than the worker keeps compiled steps for (worker/warm.py): the
                    # RSS check below also covers the step cache's bound.
                    data={
                        "size": str(32 + 8 * (number % 6)),
                        "iterations": str(2 + index % 2),
                        "preview_every": "1",
                    },
                )
                assert response.status_code == 202, response.text
                job_id = response.json()["id"]
                deadline = time.monotonic() + 300
                while (status := client.get(f"/api/jobs/{job_id}").json()["status"]) not in FINAL:
                    assert time.monotonic() < deadline, f"job {job_id} still {status}"
                    time.sleep(0.1)
                progress.record(job_id, status)
    except Exception as error:  # reported by the test, not lost in the thread
        with progress.lock:
            progress.errors.append(f"client {number}: {error!r}")


def _leftovers(stack: Stack) -> tuple[list[str], set[str]]:
    with stack.redis() as redis:
        keys = [
            key for key in redis.scan_iter(match="*", count=1000) if not key.startswith(ALLOWED_KEY_PREFIXES)
        ]
    return sorted(keys), stack.stored_files()


@pytest.mark.timeout(600)
def test_forty_jobs_from_eight_clients_finish_leak_nothing_and_keep_memory_flat(
    stack_factory: Callable[..., Stack],
) -> None:
    soak = stack_factory(
        "soak", {"ATELIER_JOB_TTL_SECONDS": str(TTL_SECONDS), "ATELIER_CLEANUP_INTERVAL_SECONDS": "1"}
    )
    worker = soak.processes["worker"]
    progress = Progress()
    started = time.monotonic()
    clients = [
        threading.Thread(target=_client, args=(soak, number, progress), name=f"client-{number}")
        for number in range(CLIENTS)
    ]
    for thread in clients:
        thread.start()
    rss_after_10 = None
    while any(thread.is_alive() for thread in clients):
        if rss_after_10 is None and progress.count >= 10:
            rss_after_10 = rss_bytes(worker)
        time.sleep(0.05)
    rss_after_40 = rss_bytes(worker)
    all_final_after = time.monotonic() - started

    deadline = time.monotonic() + 60  # TTL, then the next clean-up pass
    while any(_leftovers(soak)) and time.monotonic() < deadline:
        time.sleep(0.5)
    leaked_keys, leaked_files = _leftovers(soak)
    assert rss_after_10 is not None
    growth = (rss_after_40 - rss_after_10) / rss_after_10
    report = {
        "jobs": len(progress.finals),
        "statuses": {status: list(progress.finals.values()).count(status) for status in FINAL},
        "seconds_until_all_final": round(all_final_after, 1),
        "worker_rss_mib_after_10": round(rss_after_10 / 2**20, 1),
        "worker_rss_mib_after_40": round(rss_after_40 / 2**20, 1),
        "worker_rss_growth_percent": round(growth * 100, 1),
        "leaked_redis_keys": leaked_keys,
        "leaked_files": sorted(leaked_files),
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    logger.info("soak report: %s", report)

    assert progress.errors == []
    assert len(progress.finals) == CLIENTS * JOBS_PER_CLIENT
    assert set(progress.finals.values()) == {"succeeded"}
    assert leaked_keys == [] and leaked_files == set()
    assert growth < 0.20, report
