"""What the workers' engines reported when they loaded VGG19: whether jobs can run at all.

A worker that cannot load its weights (offline, no ImageNet file) still consumes jobs and fails each one
after its upload; /readyz and the upload page read this to say so before anyone uploads.
"""

from __future__ import annotations

import time

from core.jobs import WORKER_FRESH_SECONDS, JobStore


def engine_problem(store: JobStore) -> str | None:
    """The reason jobs cannot run when every live worker that reported failed to load its engine;
    None while any live worker's engine is ready, or none has reported yet (still starting)."""
    fresh_after = time.time() - WORKER_FRESH_SECONDS
    live = {name for name, seen in store.workers_last_seen().items() if seen >= fresh_after}
    reports = [report for name, report in store.worker_engines().items() if name in live]
    if not reports or any(report["ready"] for report in reports):
        return None
    return str(reports[0]["error"])
