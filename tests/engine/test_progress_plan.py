"""core/progress.py's plan of scales (the upload page's estimates) is the engine's (optimize.scale_plan)."""

from __future__ import annotations

import pytest

from core.options import PRESETS
from core.progress import eta_seconds, full_size_steps, scale_steps, work_fraction
from worker.engine.optimize import scale_plan
from worker.engine.options import StyleOptions


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("shape", [(1536, 2048), (2048, 2048), (600, 800)])
def test_every_preset_splits_its_steps_as_the_engine_does(name: str, shape: tuple[int, int]) -> None:
    preset = PRESETS[name]
    scales = tuple(preset.options.get("scales", (1.0,)))
    height, width = shape
    engine = scale_plan(height, width, StyleOptions(iterations=preset.iterations, scales=scales))
    core = scale_steps(preset.iterations, scales)

    assert [steps for _, _, steps in engine] == [steps for _, steps in core]
    full = height * width
    assert [h * w / full for h, w, _ in engine] == pytest.approx([pixels for pixels, _ in core], rel=0.01)


def test_work_counts_pixels_and_the_eta_follows_it() -> None:
    plan = scale_steps(400, (0.125, 0.25, 0.5, 1.0))  # the Print preset: 100 steps per scale
    assert full_size_steps(plan) == pytest.approx(100 * (1 / 64 + 1 / 16 + 1 / 4 + 1))
    assert work_fraction(plan, 300) == pytest.approx(
        (1 / 64 + 1 / 16 + 1 / 4) / (1 / 64 + 1 / 16 + 1 / 4 + 1)
    )
    assert work_fraction(plan, 1000) == 1.0
    assert eta_seconds(0.25, 30.0) == 90.0
    assert eta_seconds(0.0, 30.0) is None and eta_seconds(1.0, 30.0) == 0.0
