"""Video: how much the warm start and the temporal loss cut flicker, and what a clip costs.

    python bench/video.py                 # pan and zoom at 64 px, 8 frames; costs at 256 px
    python bench/video.py --side 96 --frames 10 --iterations 80
    make bench-video

Clips with known motion, generated from an example photo (tests/support/clips.py): a pan (2 px a
frame to the right) and a zoom (3% a frame into the centre), so the true flow between frames is
known. Each clip is stylised three ways at the same steps per frame (frame 1 ``iterations``, later
frames ``frame_iterations``): every frame independent (temporal_weight=0, frame_init=content), the
warm start only (frame_init=previous, temporal_weight=0), and the warm start plus the temporal loss
(the defaults). The warping error is the mean squared difference (pixels in [0, 1]) between each
output frame and the one before warped onto it by the true flow, over the pixels that flow keeps
in view; the ratios are against the independent frames. Then the time of a later frame against a
still of the same size and steps, the flow's cost, and the whole cost of a 5 s clip at 12 fps at
256 px with the quick preset's steps (100, then 50 a frame), from measured step times. Random weights
(the same arithmetic as ImageNet's). Prints tables and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path[:0] = [str(ROOT)]
STYLE = ROOT / "library" / "styles" / "hokusai-great-wave.jpg"
RUNS = {
    "independent": {"temporal_weight": 0.0, "frame_init": "content"},
    "warm start": {"temporal_weight": 0.0, "frame_init": "previous"},
    "warm start + temporal loss": {},  # the defaults
}


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{os.cpu_count()}-vCPU {line.split(':', 1)[1].strip()}"
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _clips(side: int, frames: int, real: Path | None, fps: float) -> dict[str, tuple[list, list]]:
    from tests.support.clips import pan, pan_flow, photo, zoom, zoom_flow
    from worker.engine.flow import FrameFlow

    source = photo("chelsea.png")
    pan_true = FrameFlow(*pan_flow(side, side, 2))
    zoom_true = FrameFlow(*zoom_flow(side, side, 0.03))
    clips = {
        "pan": (pan(source, frames, side, side, step=2), [pan_true] * (frames - 1)),
        "zoom": (zoom(source, frames, side, side, rate=0.03), [zoom_true] * (frames - 1)),
    }
    if real is not None:
        clips[f"real: {real.name}"] = _real_clip(real, side, frames, fps)
    return clips


def _real_clip(path: Path, side: int, frames: int, fps: float) -> tuple[list, list]:
    """A real clip's first ``frames`` frames at ``fps``, scaled to ``side`` px on their longest side.
    Its true motion is unknown: the DIS flow between the input frames stands in for it (so its
    error includes the flow's own, alike for the three runs)."""
    import itertools

    from core.media import decode_frames
    from worker.engine.flow import FrameFlow
    from worker.engine.images import resize_to_longest

    clip = [resize_to_longest(frame, side) for frame in itertools.islice(decode_frames(path, fps), frames)]
    return clip, [FrameFlow.between(a, b) for a, b in zip(clip, clip[1:], strict=False)]


def consistency(args: argparse.Namespace, extractor, style) -> dict:  # noqa: ANN001
    from spec.options import StyleOptions
    from spec.plan import plan_video
    from worker.engine.flow import FrameFlow, warping_error
    from worker.engine.video import VideoHooks, stylize_video

    table: dict = {}
    for name, (clip, true_flows) in _clips(args.side, args.frames, args.clip, args.clip_fps).items():
        estimated = [FrameFlow.between(a, b) for a, b in zip(clip, clip[1:], strict=False)]
        rows: dict = {"input": warping_error(clip, true_flows)}
        for run, chosen in RUNS.items():
            options = StyleOptions(
                max_size=args.side,
                iterations=args.iterations,
                frame_iterations=args.frame_iterations,
                **chosen,
            )
            plan = plan_video(clip[0].shape[:2], [style.shape[:2]], options, len(clip), 12.0)
            seconds: list[float] = []
            result = stylize_video(
                plan,
                clip,
                [style],
                extractor,
                VideoHooks(on_frame=lambda done, times=seconds: times.append(done.result.seconds)),
            )
            rows[run] = {
                "true_flow": warping_error(result.frames, true_flows),
                "estimated_flow": warping_error(result.frames, estimated),
                "first_frame_s": seconds[0],
                "later_frame_s": sum(seconds[1:]) / len(seconds[1:]),
                "flow_s_per_frame": result.flow_seconds / (len(clip) - 1),
            }
        base = rows["independent"]["true_flow"]
        for run in RUNS:
            rows[run]["ratio"] = rows[run]["true_flow"] / base if base else 0.0
        table[name] = rows
        print(
            f"\n{name}, {args.side} px, {args.frames} frames, "
            f"{args.iterations} then {args.frame_iterations} steps"
        )
        print(f"  input frames' own warping error: {rows['input']:.6f}")
        print(
            f"  {'run':<28} {'error (true flow)':>18} {'(DIS flow)':>11} {'ratio':>6} {'later frame s':>14}"
        )
        for run in RUNS:
            row = rows[run]
            print(
                f"  {run:<28} {row['true_flow']:>18.6f} {row['estimated_flow']:>11.6f} {row['ratio']:>6.3f} "
                f"{row['later_frame_s']:>14.2f}"
            )
    return table


def _step_seconds(extractor, style, side: int, steps: int, temporal: bool) -> float:  # noqa: ANN001
    """Seconds per step after the first (the trace) of a ``side`` px run, with or without the
    temporal loss."""
    import numpy as np

    from spec.options import StyleOptions
    from tests.support.clips import pan, photo
    from worker.engine.flow import FrameFlow
    from worker.engine.hooks import Hooks, RunImages
    from worker.engine.optimize import stylize
    from worker.engine.temporal import TemporalTarget

    clip = pan(photo("chelsea.png"), 2, side, side)
    images = RunImages(clip[1], [style])
    plan = images.plan(StyleOptions(max_size=side, iterations=steps))
    target = None
    if temporal:
        flow = FrameFlow.between(clip[0], clip[1])
        target = TemporalTarget(flow.bring_forward(clip[0].astype(np.float32) / 255), flow.mask, 1e3)
    times: list[float] = []
    stylize(plan, images, extractor, Hooks(on_progress=lambda p: times.append(p.elapsed)), temporal=target)
    return (times[-1] - times[0]) / (len(times) - 1)


def costs(args: argparse.Namespace, extractor, style) -> dict:  # noqa: ANN001
    from tests.support.clips import pan, photo
    from worker.engine.flow import FrameFlow

    side = 256
    clip = pan(photo("chelsea.png"), 2, side, side)
    begun = time.perf_counter()
    for _ in range(3):
        FrameFlow.between(clip[0], clip[1])
    flow_seconds = (time.perf_counter() - begun) / 3
    still = _step_seconds(extractor, style, side, args.cost_steps, temporal=False)
    frame = _step_seconds(extractor, style, side, args.cost_steps, temporal=True)
    frames, first, later = 5 * 12, 100, 50
    total = first * still + (frames - 1) * (later * frame)
    result = {
        "side": side,
        "still_step_s": still,
        "frame_step_s": frame,
        "flow_s": flow_seconds,
        "clip": {"seconds": 5, "fps": 12, "frames": frames, "first_steps": first, "later_steps": later},
        "clip_seconds": total,
        "still_seconds_quick": first * still,
    }
    print(
        f"\ncost at {side} px: a step {still:.3f} s still, {frame:.3f} s with the temporal loss; both flows"
    )
    print(f"  of a frame pair {flow_seconds * 1000:.0f} ms (on the second thread, beside the steps)")
    print(
        f"  a 5 s clip at 12 fps (60 frames, 100 then 50 steps): {total:.0f} s = {total / 60:.1f} min, "
        f"{total / (first * still):.1f}x a quick still ({first * still:.0f} s)"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--frame-iterations", type=int, default=30)
    parser.add_argument("--cost-steps", type=int, default=6, help="steps timed at 256 px")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--cost-only", action="store_true", help="only the 256 px costs")
    parser.add_argument(
        "--clip", type=Path, help="also a real clip (its error measured with DIS flow: its motion is unknown)"
    )
    parser.add_argument("--clip-fps", type=float, default=12.0, help="the real clip's frames kept per second")
    args = parser.parse_args()

    from worker.engine.images import load_image, resize_to_longest
    from worker.engine.model import load_extractor

    extractor = load_extractor("random", seed=0)
    style = resize_to_longest(load_image(STYLE), 256)
    print(f"{_cpu()}, TensorFlow {extractor.precision}, random weights")
    report = {
        "cpu": _cpu(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "args": {name: str(v) if isinstance(v, Path) else v for name, v in vars(args).items()},
    }
    if not args.cost_only:
        report["consistency"] = consistency(args, extractor, style)
    if not args.skip_cost:
        report["cost"] = costs(args, extractor, style)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / ("video-cost.json" if args.cost_only else "video.json")
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
