"""Video: optical flow and its consistency mask, the temporal loss's gradient, and clips stylised in
order (warm start, temporal loss, resume, stop), on tiny frames with random weights."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
import tensorflow as tf

from spec.options import StyleOptions
from spec.plan import VideoPlan, plan_video
from tests.engine.conftest import stripes
from tests.support.clips import pan, photo
from worker.engine.flow import FrameFlow, warping_error
from worker.engine.model import FeatureExtractor
from worker.engine.temporal import TemporalTarget, temporal_loss
from worker.engine.video import FrameDone, VideoHooks, VideoResult, VideoResume, stylize_video

SIDE = 32  # a size other engine tests compile too (the session extractor keeps its steps)
STEP = 2  # px the pan moves a frame
FRAMES = 3
ITERATIONS, FRAME_ITERATIONS = 16, 8  # the first frame's steps, each later one's


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    return pan(photo(), FRAMES, SIDE, SIDE, step=STEP)


@pytest.fixture(scope="module")
def flows(clip: list[np.ndarray]) -> list[FrameFlow]:
    return [FrameFlow.between(a, b) for a, b in zip(clip, clip[1:], strict=False)]


def _plan(clip: list[np.ndarray], **options: object) -> VideoPlan:
    chosen = StyleOptions(max_size=SIDE, iterations=ITERATIONS, frame_iterations=FRAME_ITERATIONS, **options)
    return plan_video(clip[0].shape[:2], [(64, 64)], chosen, frames=len(clip), fps=12.0)


def _run(
    clip: list[np.ndarray], extractor: FeatureExtractor, hooks: VideoHooks | None = None, **options: object
) -> VideoResult:
    return stylize_video(_plan(clip, **options), clip, [stripes()], extractor, hooks)


class _Watched(NamedTuple):
    result: VideoResult
    done: list[FrameDone]  # on_frame's reports
    steps: list[tuple[int, int, int]]  # on_progress's (frame, step, total)


@pytest.fixture(scope="module")
def temporal(clip: list[np.ndarray], extractor: FeatureExtractor) -> _Watched:
    """The clip stylised with the defaults (warm start and temporal loss), its hooks' reports kept:
    the run the tests of the temporal loss and of the frames' order both look at."""
    done: list[FrameDone] = []
    steps: list[tuple[int, int, int]] = []
    hooks = VideoHooks(
        on_frame=done.append, on_progress=lambda frame, p: steps.append((frame, p.step, p.total))
    )
    return _Watched(_run(clip, extractor, hooks), done, steps)


def test_the_flow_of_a_pan_is_its_shift_and_the_entering_edge_is_inconsistent(flows: list[FrameFlow]) -> None:
    flow = flows[0]
    inner = flow.backward[4:-4, 4:-8]  # away from the borders
    assert np.median(inner[..., 0]) == pytest.approx(STEP, abs=0.25)
    assert np.median(inner[..., 1]) == pytest.approx(0, abs=0.25)
    # The right edge of frame t entered the view: its pixels were not in frame t-1.
    assert flow.mask[:, -STEP:].mean() < 0.5
    assert flow.mask[4:-4, 4:-8].mean() > 0.9


def test_warping_the_previous_frame_by_the_flow_gives_the_current_one(
    clip: list[np.ndarray], flows: list[FrameFlow]
) -> None:
    warped = flows[0].bring_forward(clip[0].astype(np.float32))
    unwarped = np.abs(clip[1].astype(np.float32) - clip[0]).mean()
    error = np.abs(clip[1].astype(np.float32) - warped)[flows[0].mask > 0].mean()
    assert error < unwarped / 4


def test_the_temporal_loss_is_differentiable_and_zero_where_the_mask_is() -> None:
    rng = np.random.default_rng(0)
    warped = rng.uniform(0, 1, (8, 8, 3)).astype(np.float32)
    mask = np.ones((8, 8), np.float32)
    mask[:, :4] = 0
    target = TemporalTarget(warped, mask, weight=6.0).at(8, 8)
    image = tf.Variable(rng.uniform(0, 1, (1, 8, 8, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = temporal_loss(image, target)
    gradient = tape.gradient(loss, image).numpy()[0]
    expected = 2 * 6.0 / 3 * mask[..., None] * (image.numpy()[0] - warped)
    np.testing.assert_allclose(gradient, expected, rtol=1e-5, atol=1e-6)
    assert float(loss) == pytest.approx(
        6.0 / 3 * float(np.sum(mask[..., None] * (image.numpy()[0] - warped) ** 2))
    )


def test_the_temporal_loss_makes_consecutive_frames_agree(
    clip: list[np.ndarray], flows: list[FrameFlow], extractor: FeatureExtractor, temporal: _Watched
) -> None:
    independent = _run(clip, extractor, temporal_weight=0, frame_init="content")
    frames = temporal.result.frames
    assert len(independent.frames) == len(frames) == len(clip)
    assert all(frame.shape == (SIDE, SIDE, 3) for frame in frames)
    before, after = warping_error(independent.frames, flows), warping_error(frames, flows)
    assert after < before / 2, (before, after)  # measured 0.40 of it


def test_frames_come_in_order_with_their_steps_and_a_resume_does_only_the_rest(
    clip: list[np.ndarray], extractor: FeatureExtractor, temporal: _Watched
) -> None:
    done, steps = temporal.done, temporal.steps
    assert [d.frame for d in done] == [1, 2, 3]
    first, later = ITERATIONS, FRAME_ITERATIONS
    assert steps[0] == (1, 1, first) and steps[first] == (2, 1, later) and steps[-1] == (3, later, later)
    assert len(steps) == first + 2 * later

    resumed_steps: list[int] = []
    resumed = stylize_video(
        _plan(clip), clip, [stripes()], extractor,
        VideoHooks(on_progress=lambda frame, p: resumed_steps.append(frame)),
        resume=VideoResume(frame=2, raw=done[1].raw),
    )  # fmt: skip
    assert resumed.first_frame == 3 and len(resumed.frames) == 1
    assert sorted(set(resumed_steps)) == [3]


def test_a_stop_ends_the_clip_with_the_finished_frames(
    clip: list[np.ndarray], extractor: FeatureExtractor
) -> None:
    calls = {"n": 0}

    def stop_in_frame_two() -> bool:
        calls["n"] += 1
        return calls["n"] > ITERATIONS + 5

    result = _run(clip, extractor, VideoHooks(should_stop=stop_in_frame_two))
    assert result.stopped and len(result.frames) == 1
