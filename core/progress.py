"""The time left of a job, from the fraction of its work done.

Work is pixel-steps (spec/plan.py ``RunPlan.work_fraction``): coarse to fine, the first steps run on an
image a 16th of the full size or less, so counting steps would make the progress bar crawl and then
jump, and the time left wrong. The worker records the fraction; the web shows it and this ETA.

Standard library only: the web, the worker and the core all import it.
"""

from __future__ import annotations


def eta_seconds(work: float, elapsed: float, work_before: float = 0.0) -> float | None:
    """Seconds left at the pace so far: ``elapsed`` seconds for the ``work - work_before`` this run
    did (``work_before``: done before it, by a run that crashed or was stopped), or None."""
    done = work - work_before
    if done <= 0 or elapsed <= 0:
        return None
    return round(elapsed / done * max(1.0 - work, 0.0), 1)
