"""Rough run-time estimates shown next to the presets on the upload page.

A VGG19 step costs roughly in proportion to the number of pixels, so one reference point per device
class is enough for an order of magnitude. The CPU numbers are docs/engine.md's measurements ("Speed
(measured)"); the page states where the numbers come from (REFERENCE_NOTE): update both together.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.options import PRESETS, preset_plan
from spec.plan import RunPlan

REFERENCE_SIDE = 256
# Seconds per Adam step for a square REFERENCE_SIDE image.
CPU_SECONDS_PER_STEP_QUIET = 0.45  # measured: 2 CPU cores, tensorflow-cpu 2.21, nothing else running
CPU_SECONDS_PER_STEP_BUSY = 1.5  # measured: the same cores shared with other work
GPU_SECONDS_PER_STEP = 0.01  # assumed (about 50x the quiet CPU); no GPU was measured
REFERENCE_NOTE = (
    "Times are rough. CPU: measured 0.45 s per step at 256 px on 2 idle cores, up to 1.5 s when they are "
    "busy. GPU: assumed about 50× faster, not measured. Time grows with the pixel count, so non-square "
    "images are faster."
)


@dataclass(frozen=True)
class PresetChoice:
    name: str
    label: str
    size: int
    iterations: int
    gpu_time: str
    cpu_time: str
    ladder_start: int = 0  # the coarse-to-fine ladder's first rung it sets (px); 0: one size


def estimate_seconds(size: int, seconds_per_step_at_reference: float, plan: RunPlan) -> float:
    """Seconds for a square size x size image optimised by ``plan`` (core.options.preset_plan): a step
    costs in proportion to its pixels, so a coarse-to-fine plan's steps are counted as full-size ones
    by their pixels (RunPlan.full_size_steps)."""
    return seconds_per_step_at_reference * (size / REFERENCE_SIDE) ** 2 * plan.full_size_steps()


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


def humanize_range(low_seconds: float, high_seconds: float) -> str:
    """'1–3 min' style range; one value when both ends round the same."""
    low, high = humanize_duration(low_seconds), humanize_duration(high_seconds)
    if low == high:
        return low
    low_number, _, low_unit = low.partition(" ")
    if low_unit == high.partition(" ")[2] and low_number.isdigit():
        return f"{low_number}–{high}"
    return f"{low} – {high}"


def preset_choices(max_size: int, max_iterations: int) -> list[PresetChoice]:
    """The presets as the upload page shows them, clamped to the server's limits like the API does."""
    choices = []
    for name, preset in PRESETS.items():
        size, iterations = min(preset.size, max_size), min(preset.iterations, max_iterations)
        plan = preset_plan(name, size, iterations)
        choices.append(
            PresetChoice(
                name=name,
                label=name.capitalize(),
                size=size,
                iterations=iterations,
                gpu_time=humanize_duration(estimate_seconds(size, GPU_SECONDS_PER_STEP, plan)),
                cpu_time=humanize_range(
                    estimate_seconds(size, CPU_SECONDS_PER_STEP_QUIET, plan),
                    estimate_seconds(size, CPU_SECONDS_PER_STEP_BUSY, plan),
                ),
                ladder_start=int(preset.options.get("ladder_start", 0)),
            )
        )
    return choices
