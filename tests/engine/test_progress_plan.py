"""Progress and ETA count work (core/progress.py): the engine's plan of sizes, a step by its pixels."""

from __future__ import annotations

import pytest

from core.options import PRESETS, preset_plan
from core.progress import as_work, eta_seconds, full_size_steps, work_fraction
from spec.options import StyleOptions, scale_plan


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_the_upload_pages_estimates_take_the_engines_plan(name: str) -> None:
    preset = PRESETS[name]
    options = StyleOptions.from_public(
        {**preset.options, "size": preset.size, "iterations": preset.iterations}
    )
    engine = scale_plan(preset.size, preset.size, options)
    assert preset_plan(name, preset.size, preset.iterations) == as_work(engine)
    assert sum(steps for _, _, steps in engine) == preset.iterations


def test_work_counts_pixels_and_the_eta_follows_it() -> None:
    plan = as_work([(256, 256, 100), (512, 512, 100), (1024, 1024, 100), (2048, 2048, 100)])
    assert full_size_steps(plan) == pytest.approx(100 * (1 / 64 + 1 / 16 + 1 / 4 + 1))
    assert work_fraction(plan, 300) == pytest.approx(
        (1 / 64 + 1 / 16 + 1 / 4) / (1 / 64 + 1 / 16 + 1 / 4 + 1)
    )
    assert work_fraction(plan, 1000) == 1.0
    assert eta_seconds(0.25, 30.0) == 90.0
    assert eta_seconds(0.0, 30.0) is None and eta_seconds(1.0, 30.0) == 0.0
    assert eta_seconds(0.75, 30.0, work_before=0.5) == 30.0  # a resumed run: its own pace
    assert eta_seconds(0.5, 30.0, work_before=0.5) is None  # nothing done since it resumed
