"""A video's run plan (spec/plan.py's VideoPlan): frame 1 as a still, later frames at their own steps,
progress over the whole clip, and the frames kept after resampling."""

from __future__ import annotations

import pytest

from spec.options import StyleOptions
from spec.plan import Limits, plan_video, resampled_frames


def test_later_frames_get_their_steps_and_progress_counts_frames_and_steps() -> None:
    options = StyleOptions(max_size=64, iterations=40, frame_iterations=10)
    plan = plan_video((48, 64), [(64, 64)], options, frames=5, fps=12.0)
    assert [plan.steps_of(frame) for frame in (1, 2, 5)] == [40, 10, 10]
    assert plan.total_steps() == 40 + 4 * 10
    assert plan.describe(3, 7) == "frame 3 of 5, step 7 of 10"
    assert plan.work_fraction(1, 0) == 0
    assert plan.work_fraction(1, 40) == pytest.approx(0.5)  # frame 1 is half of the clip's steps
    assert plan.work_fraction(2, 5) == pytest.approx(45 / 80)
    assert plan.work_fraction(5, 10) == 1
    assert plan.as_json()["frames"] == 5 and plan.as_json()["frame_steps"] == 10


def test_frame_iterations_zero_is_half_the_iterations() -> None:
    plan = plan_video((32, 32), [(32, 32)], StyleOptions(max_size=32, iterations=41), frames=3, fps=8.0)
    assert plan.later.steps == 20


def test_video_frames_are_never_tiled_and_say_so() -> None:
    options = StyleOptions(max_size=256, iterations=10)
    plan = plan_video((256, 256), [(64, 64)], options, frames=2, fps=8.0, limits=Limits(max_tile_pixels=4096))
    assert not any(rung.tiled for rung in plan.first.rungs + plan.later.rungs)
    assert any("not by tiles" in note for note in plan.first.notes)


def test_a_clip_without_frames_is_refused() -> None:
    plan = plan_video((32, 32), [(32, 32)], StyleOptions(max_size=32), frames=0, fps=8.0)
    assert plan.refusals and plan.refusals[-1].field == "content"


@pytest.mark.parametrize(
    ("frames", "source_fps", "fps", "kept"),
    [
        (300, 30.0, 12.0, 120),
        (30, 30.0, 0.0, 30),
        (30, 30.0, 60.0, 30),
        (10, 25.0, 12.0, 5),
        (1, 30.0, 5.0, 1),
    ],
)
def test_resampling_keeps_a_frame_each_one_over_fps(
    frames: int, source_fps: float, fps: float, kept: int
) -> None:
    assert resampled_frames(frames, source_fps, fps) == kept
