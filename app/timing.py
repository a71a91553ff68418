"""Rough run-time estimates shown next to the presets on the upload page.

A VGG19 step costs roughly in proportion to the number of pixels, so one measured reference point
per device class is enough for an order of magnitude. Where the numbers come from is shown on the
page too (REFERENCE_NOTE); update both when docs/engine.md has better measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.options import PRESETS

REFERENCE_SIDE = 256
# Seconds per optimisation step for a square REFERENCE_SIDE image.
CPU_SECONDS_PER_STEP = 1.0  # measured: 2-core CPU, tensorflow-cpu 2.21 (~0.07 s at 64 px)
GPU_SECONDS_PER_STEP = 0.02  # assumed for a recent data-centre GPU; not measured here
REFERENCE_NOTE = (
    "Times are rough: measured about 1 s per step at 256 px on a 2-core CPU; "
    "GPU times assume about 50× that speed. A step costs in proportion to the pixel count; "
    "non-square images are faster."
)


@dataclass(frozen=True)
class PresetChoice:
    name: str
    label: str
    size: int
    iterations: int
    gpu_time: str
    cpu_time: str


def estimate_seconds(size: int, iterations: int, seconds_per_step_at_reference: float) -> float:
    """Seconds for a square size x size image: cost per step scales with the pixel count."""
    return seconds_per_step_at_reference * (size / REFERENCE_SIDE) ** 2 * iterations


def humanize_duration(seconds: float) -> str:
    """'under 10 s', 'about 40 s', 'about 3 min', 'about 1 h 15 min': a person's rounding."""
    if seconds < 10:
        return "under 10 s"
    if seconds < 90:
        return f"about {round(seconds / 10) * 10:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    hours, minutes = divmod(round(seconds / 300) * 5, 60)
    return f"about {hours} h {minutes} min" if minutes else f"about {hours} h"


def preset_choices(max_size: int, max_iterations: int) -> list[PresetChoice]:
    """The presets as the upload page shows them, clamped to the server's limits like the API does."""
    choices = []
    for name, (size, iterations) in PRESETS.items():
        size, iterations = min(size, max_size), min(iterations, max_iterations)
        choices.append(
            PresetChoice(
                name=name,
                label=name.capitalize(),
                size=size,
                iterations=iterations,
                gpu_time=humanize_duration(estimate_seconds(size, iterations, GPU_SECONDS_PER_STEP)),
                cpu_time=humanize_duration(estimate_seconds(size, iterations, CPU_SECONDS_PER_STEP)),
            )
        )
    return choices
