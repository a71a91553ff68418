"""The times next to the presets on the upload page, from the server's measured pace (app/timing.py)."""

from __future__ import annotations

import pytest

from app.timing import (
    NO_MEASUREMENT_NOTE,
    UNREACHABLE_NOTE,
    estimate_seconds,
    humanize_duration,
    pace_near,
    preset_choices,
    timing_note,
)
from core.jobs import Pace
from core.options import preset_plan


def test_cost_grows_with_the_pixel_count() -> None:
    one_size = preset_plan("standard", 256, 100)
    assert estimate_seconds(512, 1.0, preset_plan("standard", 512, 100)) == 4 * estimate_seconds(
        256, 1.0, one_size
    )
    assert estimate_seconds(256, 1.0, preset_plan("standard", 256, 300)) == 3 * estimate_seconds(
        256, 1.0, one_size
    )


def test_durations_read_like_a_person_wrote_them() -> None:
    assert humanize_duration(4) == "under 10 s"
    assert humanize_duration(42) == "40 s"
    assert humanize_duration(600) == "10 min"
    assert humanize_duration(4500) == "1 h 15 min"


def test_presets_are_clamped_to_the_server_limits() -> None:
    choices = {choice.name: choice for choice in preset_choices(max_size=300, max_iterations=200)}
    assert (choices["quick"].size, choices["quick"].iterations) == (256, 100)
    assert (choices["high"].size, choices["high"].iterations) == (300, 200)


def test_a_server_that_has_finished_no_job_gives_no_estimate_and_says_why() -> None:
    choices = preset_choices(max_size=2048, max_iterations=2000, paces=[])
    assert [choice.time for choice in choices] == [None] * len(choices)
    assert timing_note([]) == NO_MEASUREMENT_NOTE
    assert timing_note(None) == UNREACHABLE_NOTE  # Redis down: not "no job has finished"


def test_estimates_follow_the_measured_pace_of_jobs_near_each_size() -> None:
    # Small jobs are dominated by traces (slow per pixel); large ones measure the large presets.
    small = [Pace(megapixels=0.004, seconds_per_megapixel_step=40.0)] * 3
    quick_sized = [Pace(megapixels=0.0655, seconds_per_megapixel_step=2.0)] * 2
    paces = small + quick_sized
    assert pace_near(256 * 256 / 1e6, paces) == 2.0
    assert pace_near(0.004, paces) == 40.0
    assert pace_near(4.0, paces) == 40.0  # nothing near: the median of all
    choices = {choice.name: choice for choice in preset_choices(2048, 2000, paces)}
    # Quick: 256 px, 100 steps at 2 s per megapixel-step: 0.0655 MP x 100 x 2 = 13 s.
    assert choices["quick"].time == humanize_duration(2.0 * 256 * 256 / 1e6 * 100) == "10 s"
    note = timing_note(paces)
    assert "last 5 jobs" in note and f"{40.0 * 256 * 256 / 1e6:.2f} s per step at 256 px" in note


def test_the_print_preset_counts_its_coarse_steps_by_their_pixels() -> None:
    # Print's ladder at 2048 px: 206, 104, 51, 26 and 13 steps at 512, 724, 1024, 1448 and 2048 px,
    # about the same work per rung: 65 steps' worth at 2048 px, not 400.
    plan = preset_plan("print", 2048, 400)
    assert [rung.steps for rung in plan.rungs] == [206, 104, 51, 26, 13]
    full_steps = plan.full_size_steps()
    assert 64 < full_steps < 65
    one_size = preset_plan("standard", 2048, 1)
    assert estimate_seconds(2048, 1.0, plan) == pytest.approx(
        full_steps * estimate_seconds(2048, 1.0, one_size)
    )
    choices = {choice.name: choice for choice in preset_choices(max_size=4096, max_iterations=2000)}
    assert (choices["print"].label, choices["print"].size, choices["print"].iterations) == (
        "Print",
        2048,
        400,
    )
    assert [choices[name].ladder_start for name in ("quick", "standard", "high", "print")] == [0, 0, 512, 512]
