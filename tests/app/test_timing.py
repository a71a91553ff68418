"""The rough times next to the presets on the upload page (app/timing.py)."""

from __future__ import annotations

import pytest

from app.timing import estimate_seconds, humanize_duration, humanize_range, preset_choices


def test_cost_grows_with_the_pixel_count() -> None:
    assert estimate_seconds(512, 100, 1.0) == 4 * estimate_seconds(256, 100, 1.0)
    assert estimate_seconds(256, 300, 1.0) == 3 * estimate_seconds(256, 100, 1.0)


def test_durations_read_like_a_person_wrote_them() -> None:
    assert humanize_duration(4) == "under 10 s"
    assert humanize_duration(42) == "40 s"
    assert humanize_duration(600) == "10 min"
    assert humanize_duration(4500) == "1 h 15 min"
    assert humanize_range(540, 1800) == "9–30 min"
    assert humanize_range(45, 150) == "40 s – 2 min"


def test_presets_are_clamped_to_the_server_limits() -> None:
    choices = {choice.name: choice for choice in preset_choices(max_size=300, max_iterations=200)}
    assert (choices["quick"].size, choices["quick"].iterations) == (256, 100)
    assert (choices["high"].size, choices["high"].iterations) == (300, 200)
    assert choices["quick"].gpu_time and choices["quick"].cpu_time


def test_the_print_preset_counts_its_coarse_steps_by_their_pixels() -> None:
    scales = (0.125, 0.25, 0.5, 1.0)
    # 100 steps at each of 256, 512, 1024 and 2048 px cost 133 steps at 2048 px, not 400.
    full_steps = 100 * (1 / 64 + 1 / 16 + 1 / 4 + 1)
    assert estimate_seconds(2048, 400, 1.0, scales) == pytest.approx(estimate_seconds(2048, full_steps, 1.0))
    choices = {choice.name: choice for choice in preset_choices(max_size=4096, max_iterations=2000)}
    assert (choices["print"].label, choices["print"].size, choices["print"].iterations) == (
        "Print",
        2048,
        400,
    )
