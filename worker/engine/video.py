"""stylize_video(): a clip's frames stylised in order, each from the one before (Ruder et al., 2016).

    plan = plan_video(frame.shape[:2], [style.shape[:2]], options, frames=len(clip), fps=12.0)
    result = stylize_video(plan, clip, [style], extractor, VideoHooks(on_frame=store))

Frame 1 is optimised as a still (``plan.first``). Every later frame runs ``plan.later`` (fewer
steps) and, by ``frame_init`` and ``temporal_weight``, starts from the previous stylised frame
warped onto it by the optical flow between the two input frames, and adds the temporal loss toward
that warped frame where the flow is consistent (worker/engine/temporal.py, flow.py). The flow into
frame t+1 is computed on a second thread while frame t is optimised (OpenCV releases the GIL), so
it costs the clip no wall-clock time beyond its first frame pair.

A run resumes after frame ``resume.frame`` (the frames before it done and stored elsewhere): it needs
only that frame's raw stylised image, the warm start and the temporal target of the next.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from spec.plan import VideoPlan
from worker.engine import images as imaging
from worker.engine.flow import FrameFlow
from worker.engine.hooks import Checkpoint, Hooks, Progress, RunImages
from worker.engine.model import FeatureExtractor
from worker.engine.optimize import StyleResult, stylize
from worker.engine.style_cache import StyleTargetCache
from worker.engine.temporal import TemporalTarget

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameDone:
    """One finished frame: ``frame`` (1-based), the image a person sees and the raw optimised one
    (before colours and masks: what the next frame and a resume start from)."""

    frame: int
    image: np.ndarray  # uint8 H x W x 3 at the output's size
    raw: np.ndarray
    result: StyleResult


def _never() -> bool:
    return False


@dataclass(frozen=True)
class VideoHooks:
    """``on_frame`` after each finished frame; ``on_progress(frame, progress)`` after every step;
    ``on_preview(frame, step, image)`` every ``options.preview_every`` steps; ``should_stop`` before
    every step (True ends the clip at once: the frame being optimised is not finished)."""

    on_frame: Callable[[FrameDone], None] | None = None
    on_progress: Callable[[int, Progress], None] | None = None
    on_preview: Callable[[int, int, np.ndarray], None] | None = None
    should_stop: Callable[[], bool] = field(default=_never)
    label: str = "video"


@dataclass(frozen=True)
class VideoResume:
    """Where a clip goes on: after frame ``frame`` (1-based, finished), whose raw stylised image is
    ``raw`` (FrameDone.raw)."""

    frame: int
    raw: np.ndarray


@dataclass(frozen=True)
class VideoResult:
    frames: list[np.ndarray]  # the frames finished by this call, in order (uint8 H x W x 3)
    first_frame: int  # the number (1-based) of frames[0]
    stopped: bool
    seconds: float
    flow_seconds: float  # spent computing flows (on the second thread, beside the optimisation)


def stylize_video(
    plan: VideoPlan,
    frames: Iterable[np.ndarray],
    styles: Sequence[np.ndarray],
    extractor: FeatureExtractor,
    hooks: VideoHooks | None = None,
    *,
    masks: Sequence[np.ndarray | None] | None = None,
    resume: VideoResume | None = None,
    style_cache: StyleTargetCache | None = None,
) -> VideoResult:
    """Stylise the clip ``frames`` (uint8 H x W x 3 RGB, the size ``plan`` was made for) in order."""
    started = time.perf_counter()
    hooks = hooks or VideoHooks()
    plan.check()
    options = plan.options
    height, width = plan.first.height, plan.first.width
    cache = style_cache if style_cache is not None else StyleTargetCache(64 * 2**20)  # styles once a clip
    done_before = resume.frame if resume is not None else 0
    previous_raw = resume.raw if resume is not None else None
    outputs: list[np.ndarray] = []
    stopped = False
    flow_seconds = [0.0]

    def timed_flow(previous: np.ndarray, current: np.ndarray) -> FrameFlow:
        begun = time.perf_counter()
        flow = FrameFlow.between(previous, current)
        flow_seconds[0] += time.perf_counter() - begun
        return flow

    with ThreadPoolExecutor(1, thread_name_prefix="flow") as pool:
        for number, frame, flow in _frames_with_flows(frames, height, width, pool, timed_flow, done_before):
            if number > plan.frames:
                break
            temporal, start = None, None
            if number > 1 and previous_raw is not None and flow is not None:
                warped = flow.result().bring_forward(imaging.to_float(_sized(previous_raw, height, width)))
                if options.frame_init == "previous":
                    start = Checkpoint(imaging.to_uint8(warped), 0)
                if options.temporal_weight > 0:
                    temporal = TemporalTarget(warped, flow.result().mask, options.temporal_weight)
            frame_hooks = _frame_hooks(hooks, number, start, f"{hooks.label} frame {number}/{plan.frames}")
            images = RunImages(frame, styles, masks)
            result = stylize(
                plan.frame_plan(number), images, extractor, frame_hooks, style_cache=cache, temporal=temporal
            )
            if result.stopped:
                stopped = True
                break
            assert result.raw is not None
            previous_raw = result.raw
            outputs.append(result.image)
            if hooks.on_frame is not None:
                hooks.on_frame(FrameDone(number, result.image, result.raw, result))
    seconds = time.perf_counter() - started
    logger.info(
        "%s: %d frame(s) from frame %d in %.1f s (flow %.2f s beside it)%s",
        hooks.label, len(outputs), done_before + 1, seconds, flow_seconds[0], ", stopped" if stopped else "",
    )  # fmt: skip
    return VideoResult(outputs, done_before + 1, stopped, seconds, flow_seconds[0])


def _frame_hooks(hooks: VideoHooks, number: int, start: Checkpoint | None, label: str) -> Hooks:
    """One frame's stylize() hooks: the clip's, told which frame they are about."""
    on_progress, on_preview = hooks.on_progress, hooks.on_preview
    return Hooks(
        on_progress=None if on_progress is None else (lambda progress: on_progress(number, progress)),
        on_preview=None if on_preview is None else (lambda step, image: on_preview(number, step, image)),
        should_stop=hooks.should_stop,
        resume=start,
        label=label,
    )


def _sized(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return image if image.shape[:2] == (height, width) else imaging.resize(image, height, width)


def _frames_with_flows(
    frames: Iterable[np.ndarray],
    height: int,
    width: int,
    pool: ThreadPoolExecutor,
    flow_of: Callable[[np.ndarray, np.ndarray], FrameFlow],
    skip: int,
) -> Iterator[tuple[int, np.ndarray, Future[FrameFlow] | None]]:
    """(number, frame, its flow back to the frame before) from frame ``skip + 1`` on; the flow of the
    next frame is submitted to ``pool`` before this one is yielded, so it runs while this one does."""
    source = enumerate(frames, start=1)
    previous_small: np.ndarray | None = None
    pending: tuple[int, np.ndarray, Future[FrameFlow] | None] | None = None
    for number, frame in source:
        small = _sized(frame, height, width)  # flows at the output's size
        if number <= skip:  # done before a resume: only the last one is needed, for the next flow
            previous_small = small
            continue
        flow = None if previous_small is None else pool.submit(flow_of, previous_small, small)
        previous_small = small
        if pending is not None:
            yield pending
        pending = (number, frame, flow)
    if pending is not None:
        yield pending
