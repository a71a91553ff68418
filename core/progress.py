"""How much of a job's work its steps stand for: a step costs in proportion to its image's pixels.

Coarse to fine (options ``ladder_start``, as in the Print preset, and ``scales``), the first steps
run on an image a 16th of the full size or less and the last ones on the full image, so counting steps
would make the progress bar crawl and then jump, and the time left wrong. Work here is pixel-steps:
the worker turns the engine's own plan (spec/options.py ``scale_plan``: the size and steps of
each rung) into a fraction of the run's work done (``work_fraction``), and the web shows that fraction
and an ETA from it; the upload page's estimates take the same plan for a square image.

Standard library only: the web, the worker and the core all import it.
"""

from __future__ import annotations

from collections.abc import Sequence

# (pixels per step, steps) for each size, coarsest first: the engine's plan as work.
WorkPlan = Sequence[tuple[float, int]]


def as_work(plan: Sequence[tuple[int, int, int]]) -> WorkPlan:
    """The engine's plan, (height, width, steps) per size, as (pixels per step, steps)."""
    return [(float(height * width), steps) for height, width, steps in plan]


def full_size_steps(plan: WorkPlan) -> float:
    """The plan's work in steps of its last (full) size: what an estimate multiplies by."""
    full = plan[-1][0]
    return sum(pixels * steps for pixels, steps in plan) / full


def work_fraction(plan: WorkPlan, step: int) -> float:
    """The fraction (0..1) of the plan's work done after ``step`` steps."""
    total = sum(pixels * steps for pixels, steps in plan)
    if total <= 0:
        return 0.0
    done, left = 0.0, step
    for pixels, steps in plan:
        taken = min(max(left, 0), steps)
        done += pixels * taken
        left -= taken
    return min(done / total, 1.0)


def eta_seconds(work: float, elapsed: float, work_before: float = 0.0) -> float | None:
    """Seconds left at the pace so far: ``elapsed`` seconds for the ``work - work_before`` this run
    did (``work_before``: done before it, by a run that crashed or was stopped), or None."""
    done = work - work_before
    if done <= 0 or elapsed <= 0:
        return None
    return round(elapsed / done * max(1.0 - work, 0.0), 1)
