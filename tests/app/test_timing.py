"""The rough times next to the presets on the upload page (app/timing.py)."""

from __future__ import annotations

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
