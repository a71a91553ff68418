"""Engine benchmark: ms per step and peak memory, the shipped engine against a naive baseline.

    python bench/engine.py                      # 128 and 256 px (512 too with --sizes 128,256,512)
    python bench/engine.py --sizes 128 --steps 10 --variants engine,bf16,naive

Three tables: (1) ms per step for each variant (engine as shipped = float32 without XLA on CPU,
engine with XLA, engine with bfloat16 convolutions, the naive baseline); (2) time to 10% of the
initial loss, Adam vs L-BFGS; (3) coarse-to-fine (scales 0.25, 0.5, 1) against one scale, same
step budget. Each measurement runs in a fresh Python process, so its peak resident memory
(ru_maxrss) is its own and one run's compiled graphs cannot warm up the next; with --repeat the
variants are interleaved and the median kept. Prints the tables and writes JSON with the machine's
description and load under bench/results/.

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


# Table 1's variants: (load_extractor precision, jit_compile); "naive" is bench/naive.py.
ENGINE_VARIANTS = {
    "engine": ("float32", False),
    "xla": ("float32", True),
    "bf16": ("mixed_bfloat16", False),
    "bf16-xla": ("mixed_bfloat16", True),
}
MULTISCALE = (0.25, 0.5, 1.0)


def measure_engine(
    size: int, steps: int, warmup: int, weights: str, precision: str = "float32", jit_compile: bool = False
) -> dict:
    from worker.engine import StyleOptions, load_extractor, stylize
    from worker.engine.images import to_uint8

    content, style = test_images(size)
    extractor = load_extractor(
        weights=weights, model_dir=ROOT / "data" / "models", precision=precision, jit_compile=jit_compile
    )
    stamps: list[tuple[float, float]] = []
    options = StyleOptions(max_size=size, iterations=warmup + steps)
    stylize(
        to_uint8(content), [to_uint8(style)], options, extractor=extractor,
        on_progress=lambda _: stamps.append((time.perf_counter(), time.process_time())),
    )  # fmt: skip
    return step_times(stamps[warmup:])


def step_times(stamps: list[tuple[float, float]]) -> dict:
    """Median wall and CPU (all threads) ms between consecutive (perf_counter, process_time) stamps.

    CPU time is the load-robust cross-check: other processes on the machine stretch wall time
    but barely change the CPU time a step needs.
    """
    wall = [b[0] - a[0] for a, b in zip(stamps, stamps[1:], strict=False)]
    cpu = [b[1] - a[1] for a, b in zip(stamps, stamps[1:], strict=False)]
    return {
        "ms_per_step": 1000 * statistics.median(wall),
        "cpu_ms_per_step": 1000 * statistics.median(cpu),
        "peak_rss_mib": peak_rss_mib(),
    }


def measure_naive(size: int, steps: int, warmup: int, weights: str) -> dict:
    from naive import NaiveStylizer, build_full_vgg

    del weights  # the baseline always has its own random VGG19: a step costs the same with any weights
    content, style = test_images(size)
    stylizer = NaiveStylizer(build_full_vgg(), content, style)
    for _ in range(warmup):
        stylizer.step()
    stamps = [(time.perf_counter(), time.process_time())]
    for _ in range(steps):
        stylizer.step()
        stamps.append((time.perf_counter(), time.process_time()))
    return step_times(stamps)


def measure_time_to_quality(size: int, optimizer: str, max_steps: int, weights: str) -> dict:
    """Seconds (from the start of stylize, model already built) until loss < 10% of the initial."""
    from worker.engine import StyleOptions, load_extractor, stylize
    from worker.engine.images import to_uint8

    content, style = test_images(size)
    extractor = load_extractor(weights=weights, model_dir=ROOT / "data" / "models")
    # From noise, as in the classic method: from the content image with random weights the style
    # loss barely moves and 10% is never reached (see docs/engine.md).
    options = StyleOptions(
        max_size=size, iterations=max_steps, optimizer=optimizer, init="noise", tv_weight=0.0
    )
    reached: dict = {}
    initial: dict = {}

    def on_progress(progress) -> None:
        initial.setdefault("total", progress.loss["total"])
        if "seconds" not in reached and progress.loss["total"] < 0.1 * initial["total"]:
            reached.update(seconds=progress.elapsed, steps=progress.step)

    result = stylize(
        to_uint8(content), [to_uint8(style)], options, extractor=extractor, on_progress=on_progress
    )
    return {
        "seconds_to_10pct": reached.get("seconds"),
        "steps_to_10pct": reached.get("steps"),
        "final_ratio": result.loss_final["total"] / result.loss_initial["total"],
        "peak_rss_mib": peak_rss_mib(),
    }


def measure_multiscale(
    size: int, iterations: int, weights: str, scales: tuple[float, ...], init: str, tv_weight: float
) -> dict:
    """Final full-size loss and wall seconds of one run, and the loss before every full-size step
    (for the step and time at which it got below the one-scale run's final loss)."""
    from worker.engine import StyleOptions, load_extractor, stylize
    from worker.engine.images import to_uint8
    from worker.engine.optimize import scale_plan

    content, style = test_images(size)
    extractor = load_extractor(weights=weights, model_dir=ROOT / "data" / "models")
    options = StyleOptions(
        max_size=size, iterations=iterations, init=init, tv_weight=tv_weight, scales=scales
    )
    plan = scale_plan(size, size, options)
    first_full_step = iterations - plan[-1][2] + 1
    full_losses: list[tuple[int, float, float]] = []  # (step, loss before it, elapsed)

    def on_progress(progress) -> None:
        if progress.step >= first_full_step:
            full_losses.append((progress.step, progress.loss["total"], progress.elapsed))

    started = time.perf_counter()
    result = stylize(
        to_uint8(content), [to_uint8(style)], options, extractor=extractor, on_progress=on_progress
    )
    return {
        "scales": list(scales),
        "plan": plan,
        "seconds": time.perf_counter() - started,
        "loss_initial": result.loss_initial["total"],
        "loss_final": result.loss_final["total"],
        "full_size_losses": full_losses,
        "peak_rss_mib": peak_rss_mib(),
    }


def first_below(losses: list, target: float) -> tuple[int, float] | None:
    """(step, elapsed) of the first full-size step whose starting loss is <= target."""
    return next(((step, elapsed) for step, loss, elapsed in losses if loss <= target), None)


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
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="128,256", help="comma-separated sides in px (e.g. 128,256,512)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (tracing, allocation)")
    parser.add_argument("--weights", default=os.environ.get("ATELIER_WEIGHTS", "imagenet"))
    parser.add_argument(
        "--variants", default="engine,xla,bf16,naive", help=f"of {', '.join([*ENGINE_VARIANTS, 'naive'])}"
    )
    parser.add_argument("--repeat", type=int, default=1, help="interleaved repeats per size; median kept")
    parser.add_argument("--quality-size", type=int, default=128)
    parser.add_argument("--quality-steps", type=int, default=300, help="step cap for time-to-quality")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--multiscale-size", type=int, default=256)
    parser.add_argument("--multiscale-steps", type=int, default=60, help="step budget of both runs")
    parser.add_argument(
        "--multiscale-init", default="noise", help="noise (default, as time-to-quality), content or style"
    )
    parser.add_argument("--multiscale-tv", type=float, default=0.0, help="tv_weight of both runs (default 0)")
    parser.add_argument("--skip-multiscale", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        kind, size = args.child[0], int(args.child[1])
        if kind in ENGINE_VARIANTS:
            precision, jit_compile = ENGINE_VARIANTS[kind]
            result = measure_engine(size, args.steps, args.warmup, args.weights, precision, jit_compile)
        elif kind.startswith("scales-"):
            scales = tuple(float(s) for s in kind.removeprefix("scales-").split("/"))
            result = measure_multiscale(
                size, args.multiscale_steps, args.weights, scales, args.multiscale_init, args.multiscale_tv
            )
        elif kind == "naive":
            result = measure_naive(size, args.steps, args.warmup, args.weights)
        else:  # quality-adam, quality-lbfgs
            result = measure_time_to_quality(size, kind.split("-")[1], args.quality_steps, args.weights)
        print(json.dumps(result))
        return

    load_before = os.getloadavg()
    common = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--weights", args.weights]
    variants = args.variants.split(",")
    rows = per_step_table([int(s) for s in args.sizes.split(",")], variants, args.repeat, common)
    quality = {} if args.skip_quality else quality_table(args, common)
    multiscale = {} if args.skip_multiscale else multiscale_table(args, common)

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"engine-{stamp}.json"
    machine = {**machine_info(), "load_average_before": load_before, "load_average_after": os.getloadavg()}
    report = {
        "machine": machine,
        "args": vars(args),
        "per_step": rows,
        "time_to_quality": quality,
        "multiscale": multiscale,
    }
    out.write_text(json.dumps(report, indent=2))
    print(f"\nload average (1, 5, 15 min) before {fmt_load(load_before)}, after {fmt_load(os.getloadavg())}")
    print(f"wrote {out.relative_to(ROOT)}")


def fmt_load(load: tuple[float, ...]) -> str:
    return "/".join(f"{value:.2f}" for value in load)


def per_step_table(sizes: list[int], variants: list[str], repeat: int, common: list[str]) -> list[dict]:
    """Table 1: median ms per step of each variant and its speed-up over the naive baseline."""
    print(f"{'size':>6} {'variant':>9} {'ms/step':>9} {'vs naive':>9} {'CPU ms':>8} {'CPU vs naive':>12} "
          f"{'peak MiB':>9}")  # fmt: skip
    rows = []
    for size in sizes:
        runs: dict[str, list[dict]] = {variant: [] for variant in variants}
        for _ in range(repeat):  # interleaved, so a burst of load hits every variant alike
            for variant in variants:
                runs[variant].append(run_child([variant, str(size), *common]))
        results = {
            variant: {
                "ms_per_step": statistics.median(r["ms_per_step"] for r in measured),
                "ms_per_step_all": [r["ms_per_step"] for r in measured],
                "cpu_ms_per_step": statistics.median(r["cpu_ms_per_step"] for r in measured),
                "peak_rss_mib": max(r["peak_rss_mib"] for r in measured),
            }
            for variant, measured in runs.items()
        }
        naive = results.get("naive")
        for variant, result in results.items():
            result["speedup_vs_naive"] = naive["ms_per_step"] / result["ms_per_step"] if naive else None
            result["cpu_speedup_vs_naive"] = (
                naive["cpu_ms_per_step"] / result["cpu_ms_per_step"] if naive else None
            )
            speedup = f"{result['speedup_vs_naive']:.2f}x" if naive else "-"
            cpu_speedup = f"{result['cpu_speedup_vs_naive']:.2f}x" if naive else "-"
            print(f"{size:>6} {variant:>9} {result['ms_per_step']:>9.1f} {speedup:>9} "
                  f"{result['cpu_ms_per_step']:>8.1f} {cpu_speedup:>12} {result['peak_rss_mib']:>9.0f}",
                  flush=True)  # fmt: skip
        rows.append({"size": size, **results})
    return rows


def quality_table(args: argparse.Namespace, common: list[str]) -> dict:
    """Table 2: seconds until the loss is under 10% of the initial, Adam vs L-BFGS."""
    print(f"\ntime to 10% of the initial loss at {args.quality_size} px (from noise, no TV, "
          f"cap {args.quality_steps} steps)")  # fmt: skip
    print(f"{'optimizer':>10} {'seconds':>8} {'steps':>6} {'final/initial':>14}")
    quality = {}
    for optimizer in ("adam", "lbfgs"):
        q = run_child([f"quality-{optimizer}", str(args.quality_size), *common,
                       "--quality-steps", str(args.quality_steps)])  # fmt: skip
        quality[optimizer] = q
        seconds = "never" if q["seconds_to_10pct"] is None else f"{q['seconds_to_10pct']:.1f}"
        print(f"{optimizer:>10} {seconds:>8} {q['steps_to_10pct'] or '-':>6} {q['final_ratio']:>14.3f}")
    return quality


def multiscale_table(args: argparse.Namespace, common: list[str]) -> dict:
    """Table 3: coarse-to-fine against one scale with the same step budget (Adam)."""
    size, budget = args.multiscale_size, args.multiscale_steps
    extra = ["--multiscale-steps", str(budget), "--multiscale-init", args.multiscale_init,
             "--multiscale-tv", str(args.multiscale_tv)]  # fmt: skip
    single = run_child(["scales-1.0", str(size), *common, *extra])
    multi = run_child([f"scales-{'/'.join(map(str, MULTISCALE))}", str(size), *common, *extra])
    target = single["loss_final"]
    reached = first_below(multi["full_size_losses"], target)
    print(f"\ncoarse-to-fine at {size} px, {budget} Adam steps each (init {args.multiscale_init}, "
          f"tv_weight {args.multiscale_tv:g}); target: the one-scale final loss {target:.4g}")  # fmt: skip
    print(f"{'scales':>16} {'seconds':>8} {'final loss':>11} {'reached target':>24}")
    for name, run in (("1", single), ("/".join(map(str, MULTISCALE)), multi)):
        print(f"{name:>16} {run['seconds']:>8.1f} {run['loss_final']:>11.4g}", end="")
        if run is single:
            print(f"{'at the end':>25}")
        elif reached is None:
            print(f"{'never (in the budget)':>25}")
        else:
            print(f"{f'step {reached[0]}, {reached[1]:.1f} s':>25}")
    # Wins only if the image it returns is at least as good, sooner (the loss can rise again after
    # reaching the target: with random weights, from the content image, total variation grows).
    wins = multi["loss_final"] <= target and multi["seconds"] < single["seconds"]
    loss_ratio, time_ratio = multi["loss_final"] / target, multi["seconds"] / single["seconds"]
    print(f"coarse-to-fine {'wins' if wins else 'does not win'}: final loss {loss_ratio:.2f}x the "
          f"one-scale run's in {time_ratio:.2f}x the time")  # fmt: skip
    return {
        "size": size,
        "steps": budget,
        "init": args.multiscale_init,
        "tv_weight": args.multiscale_tv,
        "single": single,
        "multi": multi,
        "reached": reached,
        "wins": wins,
    }


if __name__ == "__main__":
    main()
