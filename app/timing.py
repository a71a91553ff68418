"""Run-time estimates next to the presets on the upload page, from this server's measured pace.

A VGG19 step costs roughly in proportion to the number of pixels, so a pace in seconds per
megapixel-step (JobStore.recent_paces: the last finished jobs, measured by the workers that ran them)
times a preset's megapixel-steps (its plan's full-size steps, RunPlan.full_size_steps) gives its time.
A server that has finished no job yet says so instead of guessing.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from core.jobs import Pace
from core.options import PRESETS, preset_plan
from spec.plan import RunPlan

REFERENCE_SIDE = 256  # the note states the pace as the seconds of one step at this side
NEAR_FACTOR = 4.0  # jobs within 4x a preset's pixels measure its pace (traces weigh on small ones)
UNREACHABLE_NOTE = (
    "No time estimates right now: the server cannot read its measurements (its job store is down)."
)
NO_MEASUREMENT_NOTE = (
    "No time estimates yet: this server has not finished a job. They appear once it has, from the pace "
    "its workers measure."
)


@dataclass(frozen=True)
class PresetChoice:
    name: str
    label: str
    size: int
    iterations: int
    time: str | None  # None: no measured pace yet
    ladder_start: int = 0  # the coarse-to-fine ladder's first rung it sets (px); 0: one size


def pace_near(megapixels: float, paces: Sequence[Pace]) -> float | None:
    """The median pace (seconds per megapixel-step) of the jobs within NEAR_FACTOR of ``megapixels``,
    or of all of them when none is that near; None without any."""
    near = [
        p.seconds_per_megapixel_step
        for p in paces
        if 1 / NEAR_FACTOR <= p.megapixels / megapixels <= NEAR_FACTOR
    ]
    chosen = near or [p.seconds_per_megapixel_step for p in paces]
    return statistics.median(chosen) if chosen else None


def estimate_seconds(size: int, seconds_per_megapixel_step: float, plan: RunPlan) -> float:
    """Seconds for a square size x size image optimised by ``plan`` (core.options.preset_plan): a
    coarse-to-fine plan's steps are counted as full-size ones by their pixels."""
    return seconds_per_megapixel_step * size * size / 1e6 * plan.full_size_steps()


def timing_note(paces: Sequence[Pace] | None) -> str:
    """Where the estimates come from, in a sentence the page shows under the presets (paces None:
    the job store could not be read)."""
    if paces is None:
        return UNREACHABLE_NOTE
    if not paces:
        return NO_MEASUREMENT_NOTE
    pace = statistics.median(p.seconds_per_megapixel_step for p in paces)
    per_step = pace * REFERENCE_SIDE * REFERENCE_SIDE / 1e6
    jobs = f"{len(paces)} job" if len(paces) == 1 else f"{len(paces)} jobs"
    return (
        f"Estimated from the pace this server measured over its last {jobs} (median {per_step:.2f} s per "
        f"step at {REFERENCE_SIDE} px). Time grows with the pixel count, so non-square images are faster, "
        "and a busy queue adds its wait."
    )


def humanize_duration(seconds: float) -> str:
    """'under 10 s', '40 s', '3 min', '1 h 15 min': a person's rounding, not a stopwatch's."""
    if seconds < 10:
        return "under 10 s"
    if seconds < 90:
        return f"{round(seconds / 10) * 10:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(round(seconds / 300) * 5, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def preset_choices(max_size: int, max_iterations: int, paces: Sequence[Pace] = ()) -> list[PresetChoice]:
    """The presets as the upload page shows them, clamped to the server's limits like the API does,
    each with its time at the measured pace near its size (None without a measurement)."""
    choices = []
    for name, preset in PRESETS.items():
        size, iterations = min(preset.size, max_size), min(preset.iterations, max_iterations)
        plan = preset_plan(name, size, iterations)
        pace = pace_near(size * size / 1e6, paces)
        choices.append(
            PresetChoice(
                name=name,
                label=name.capitalize(),
                size=size,
                iterations=iterations,
                time=None if pace is None else humanize_duration(estimate_seconds(size, pace, plan)),
                ladder_start=int(preset.options.get("ladder_start", 0)),
            )
        )
    return choices
