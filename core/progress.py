"""How much of a job's work its steps stand for: a step costs in proportion to its image's pixels.

With coarse-to-fine scales (option ``scales``, the Print preset) the first steps run on an image a
64th of the full size and the last ones on the full image, so counting steps would make the progress
bar race ahead and the time left far too short. Work here is pixel-steps: the worker turns the
engine's own plan (worker/engine/optimize.py ``scale_plan``: the size and steps of each scale) into
a fraction of the run's work done (``work_fraction``), and the web shows that fraction and an ETA
from it. ``scale_steps`` is the same plan without the content image, for the upload page's estimates.

Standard library only: the web, the worker and the core all import it.
"""

from __future__ import annotations

from collections.abc import Sequence

# (pixels per step, steps) for each scale, coarsest first: the engine's plan as work.
WorkPlan = Sequence[tuple[float, int]]


def scale_steps(iterations: int, scales: Sequence[float]) -> list[tuple[float, int]]:
    """(pixels per step relative to the full size, steps) per scale, coarsest first.

    The engine's split (optimize.scale_plan): the iterations equally between the scales, the
    remainder to the full size. It drops scales under 16 px as well, which only a content image
    can tell; for whole presets that changes nothing (tests/engine/test_progress_plan.py).
    """
    count = len(scales)
    steps = [iterations // count] * count
    steps[-1] += iterations - sum(steps)
    return [(scale * scale, number) for scale, number in zip(scales, steps, strict=True) if number > 0]


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


def eta_seconds(work: float, elapsed: float) -> float | None:
    """Seconds left at the pace so far (``elapsed`` seconds for ``work`` of the run), or None."""
    if work <= 0 or elapsed <= 0:
        return None
    return round(elapsed / work * max(1.0 - work, 0.0), 1)
