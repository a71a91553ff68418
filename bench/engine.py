"""Engine benchmark: ms per step and peak memory, the shipped engine against a naive baseline.

    python bench/engine.py                      # 128 and 256 px (512 too with --sizes 128,256,512)
    python bench/engine.py --sizes 128 --steps 10

Each measurement runs in a fresh Python process, so its peak resident memory (ru_maxrss) is its
own and one run's compiled graphs cannot warm up the next. Prints a table and writes JSON with
the machine's description under bench/results/.

Weights: ImageNet when they are installed (ATELIER_WEIGHTS), else pass --weights random; the
cost of a step does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def test_images(size: int) -> tuple:
    """A smooth content image and a striped style image, float32 in [0, 1] (deterministic)."""
    import numpy as np

    y, x = np.mgrid[0:size, 0:size] / size
    content = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x * y)], axis=-1).astype(np.float32)
    stripes = 0.5 + 0.5 * np.sin(40 * (x + 2 * y))
    style = np.stack([stripes, 1 - stripes, 0.5 * stripes], axis=-1).astype(np.float32)
    return content, style


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure_engine(size: int, steps: int, warmup: int, weights: str, optimizer: str = "adam") -> dict:
    from worker.engine import StyleOptions, load_extractor, stylize
    from worker.engine.images import to_uint8

    content, style = test_images(size)
    extractor = load_extractor(weights=weights, model_dir=ROOT / "data" / "models")
    stamps: list[float] = []
    options = StyleOptions(max_size=size, iterations=warmup + steps, optimizer=optimizer)
    stylize(
        to_uint8(content), [to_uint8(style)], options, extractor=extractor,
        on_progress=lambda _: stamps.append(time.perf_counter()),
    )  # fmt: skip
    intervals = [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1 :], strict=False)]
    return {"ms_per_step": 1000 * statistics.median(intervals), "peak_rss_mib": peak_rss_mib()}


def measure_naive(size: int, steps: int, warmup: int, weights: str) -> dict:
    from naive import NaiveStylizer, build_full_vgg

    if weights != "random":
        raise SystemExit("the naive baseline is timed with random weights (same cost per step)")
    content, style = test_images(size)
    stylizer = NaiveStylizer(build_full_vgg(), content, style)
    for _ in range(warmup):
        stylizer.step()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        stylizer.step()
        times.append(time.perf_counter() - started)
    return {"ms_per_step": 1000 * statistics.median(times), "peak_rss_mib": peak_rss_mib()}


def measure_time_to_quality(size: int, optimizer: str, max_steps: int, weights: str) -> dict:
    """Seconds (from the start of stylize, model already built) until loss < 10% of the initial."""
    from worker.engine import StyleOptions, load_extractor, stylize
    from worker.engine.images import to_uint8

    content, style = test_images(size)
    extractor = load_extractor(weights=weights, model_dir=ROOT / "data" / "models")
    # From noise, as in the classic method: from the content image with random weights the style
    # loss barely moves and 10% is never reached (see docs/engine.md).
    options = StyleOptions(max_size=size, iterations=max_steps, optimizer=optimizer, init="noise", tv_weight=0.0)
    reached: dict = {}
    initial: dict = {}

    def on_progress(progress) -> None:
        initial.setdefault("total", progress.loss["total"])
        if "seconds" not in reached and progress.loss["total"] < 0.1 * initial["total"]:
            reached.update(seconds=progress.elapsed, steps=progress.step)

    result = stylize(to_uint8(content), [to_uint8(style)], options, extractor=extractor, on_progress=on_progress)
    return {
        "seconds_to_10pct": reached.get("seconds"),
        "steps_to_10pct": reached.get("steps"),
        "final_ratio": result.loss_final["total"] / result.loss_initial["total"],
        "peak_rss_mib": peak_rss_mib(),
    }


def run_child(args: list[str]) -> dict:
    """Run one measurement in a fresh interpreter and return its JSON line."""
    completed = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise SystemExit(f"measurement {args} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def machine_info() -> dict:
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "platform": platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="128,256", help="comma-separated sides in px (e.g. 128,256,512)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (tracing, allocation)")
    parser.add_argument("--weights", default=os.environ.get("ATELIER_WEIGHTS", "imagenet"))
    parser.add_argument("--quality-size", type=int, default=128)
    parser.add_argument("--quality-steps", type=int, default=300, help="step cap for time-to-quality")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        kind, size = args.child[0], int(args.child[1])
        if kind == "engine":
            result = measure_engine(size, args.steps, args.warmup, args.weights)
        elif kind == "naive":
            result = measure_naive(size, args.steps, args.warmup, args.weights)
        else:  # quality-adam, quality-lbfgs
            result = measure_time_to_quality(size, kind.split("-")[1], args.quality_steps, args.weights)
        print(json.dumps(result))
        return

    common = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--weights", args.weights]
    rows = []
    print(f"{'size':>6} {'engine ms/step':>15} {'naive ms/step':>14} {'speed-up':>9} "
          f"{'engine MiB':>11} {'naive MiB':>10}")  # fmt: skip
    for size in (int(s) for s in args.sizes.split(",")):
        engine = run_child(["engine", str(size), *common])
        naive = run_child(["naive", str(size), *common])
        row = {"size": size, "engine": engine, "naive": naive, "speedup": naive["ms_per_step"] / engine["ms_per_step"]}
        rows.append(row)
        print(f"{size:>6} {engine['ms_per_step']:>15.1f} {naive['ms_per_step']:>14.1f} {row['speedup']:>8.2f}x "
              f"{engine['peak_rss_mib']:>11.0f} {naive['peak_rss_mib']:>10.0f}", flush=True)  # fmt: skip

    quality = {}
    if not args.skip_quality:
        print(f"\ntime to 10% of the initial loss at {args.quality_size} px (from noise, no TV, "
              f"cap {args.quality_steps} steps)")  # fmt: skip
        print(f"{'optimizer':>10} {'seconds':>8} {'steps':>6} {'final/initial':>14}")
        for optimizer in ("adam", "lbfgs"):
            q = run_child([f"quality-{optimizer}", str(args.quality_size), *common,
                           "--quality-steps", str(args.quality_steps)])  # fmt: skip
            quality[optimizer] = q
            seconds = "never" if q["seconds_to_10pct"] is None else f"{q['seconds_to_10pct']:.1f}"
            print(f"{optimizer:>10} {seconds:>8} {q['steps_to_10pct'] or '-':>6} {q['final_ratio']:>14.3f}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"engine-{stamp}.json"
    report = {"machine": machine_info(), "args": vars(args), "per_step": rows, "time_to_quality": quality}
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
