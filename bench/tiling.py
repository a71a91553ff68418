"""Large prints: peak memory and seconds per Adam step, tiled against untiled (worker/engine/tiling.py).

    python bench/tiling.py                                   # 512, 1024, 2048 px both ways; 4096 tiled
    python bench/tiling.py --sizes 512,1024 --big 0 --steps 3
    python bench/tiling.py --tile-pixels 1048576 --untiled-max 1024 --precision mixed_bfloat16

Every configuration runs in its own Python process, so its peak resident memory (ru_maxrss) is its
own: the whole job, VGG19, the targets (content and style images of the same size, tiled like the
steps) and Adam's state included. A step's seconds are measured from just before it starts
(``should_stop``, called before every step) to its progress report, in wall-clock seconds and in
CPU seconds of all threads (which other processes on a shared machine barely change); the first
step (tracing) is left out when there are more. Prints a table and writes JSON under bench/results/.
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


def measure(size: int, tile_pixels: int, steps: int, precision: str) -> dict:
    """One configuration, in this process: a size x size Adam run of ``steps`` steps."""
    from engine import test_images

    from spec.options import StyleOptions
    from spec.plan import Limits
    from worker.engine import Hooks, RunImages, load_extractor, stylize
    from worker.engine.images import to_uint8

    content, style = (to_uint8(image) for image in test_images(size))
    extractor = load_extractor(weights="random", precision=precision)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    starts: list[tuple[float, float]] = []  # (wall, CPU of all threads) just before each step
    ends: list[tuple[float, float]] = []
    begun = time.perf_counter()

    def before_step() -> bool:
        starts.append((time.perf_counter(), time.process_time()))
        return False

    images = RunImages(content, [style])
    plan = images.plan(StyleOptions(max_size=size, iterations=steps), Limits(max_tile_pixels=tile_pixels))
    hooks = Hooks(
        on_progress=lambda _: ends.append((time.perf_counter(), time.process_time())), should_stop=before_step
    )
    result = stylize(plan, images, extractor, hooks)
    seconds = [end[0] - start[0] for start, end in zip(starts, ends, strict=False)]
    cpu = [end[1] - start[1] for start, end in zip(starts, ends, strict=False)]
    steady, steady_cpu = seconds[1:] or seconds, cpu[1:] or cpu
    return {
        "size": size,
        "tile_pixels": tile_pixels,
        "precision": precision,
        "steps": result.steps,
        "step_seconds": seconds,
        "seconds_per_step": statistics.median(steady),
        "cpu_seconds_per_step": statistics.median(steady_cpu),
        "first_step_seconds": seconds[0],
        "before_first_step_seconds": starts[0][0] - begun,  # the targets
        "ns_per_pixel_step": statistics.median(steady) / size**2 * 1e9,
        "cpu_ns_per_pixel_step": statistics.median(steady_cpu) / size**2 * 1e9,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_extractor_mib": baseline,
        "loss_final": result.loss_final["total"],
    }


def run_child(size: int, tile_pixels: int, steps: int, precision: str) -> dict:
    command = [
        sys.executable, __file__, "--child", str(size), "--tile-pixels", str(tile_pixels),
        "--steps", str(steps), "--precision", precision,
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        return {"size": size, "tile_pixels": tile_pixels, "error": completed.stderr.strip()[-2000:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="512,1024,2048", help="sizes run tiled and (up to --untiled-max) untiled"
    )
    parser.add_argument("--untiled-max", type=int, default=2048, help="largest size also run untiled")
    parser.add_argument("--big", type=int, default=4096, help="a size run tiled only (0: none)")
    parser.add_argument("--big-steps", type=int, default=1)
    parser.add_argument("--tile-pixels", type=int, default=1024 * 1024, help="max_tile_pixels of tiled runs")
    parser.add_argument("--steps", type=int, default=3, help="Adam steps per run (the first is not timed)")
    parser.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16"))
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.tile_pixels, args.steps, args.precision)))
        return

    plan = []
    for size in (int(text) for text in args.sizes.split(",")):
        if size <= args.untiled_max:
            plan.append((size, 0, args.steps))
        # Tiled with tiles of the budget, or, where the whole image fits in it, with 4 tiles at least.
        plan.append((size, min(args.tile_pixels, size * size // 2), args.steps))
    if args.big:
        plan.append((args.big, args.tile_pixels, args.big_steps))
    load_before = os.getloadavg()[0]
    rows = []
    header = f"{'size':>5} {'tiles of (px)':>13} {'s/step':>8} {'ns/px/step':>10} {'CPU s/step':>10}"
    print(f"{header} {'CPU ns/px/step':>14} {'peak MiB':>9} {'targets s':>9}")
    for size, tile_pixels, steps in plan:
        row = run_child(size, tile_pixels, steps, args.precision)
        rows.append(row)
        label = f"{tile_pixels:>13}" if tile_pixels else f"{'untiled':>13}"
        if "error" in row:
            print(f"{size:>5} {label} failed: {row['error'].splitlines()[-1]}", flush=True)
            continue
        print(
            f"{size:>5} {label} {row['seconds_per_step']:>8.2f} {row['ns_per_pixel_step']:>10.0f} "
            f"{row['cpu_seconds_per_step']:>10.2f} {row['cpu_ns_per_pixel_step']:>14.0f} "
            f"{row['peak_rss_mib']:>9.0f} {row['before_first_step_seconds']:>9.1f}",
            flush=True,
        )
    report = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "precision": args.precision,
        "rows": rows,
    }
    print(f"load average (1 min): {report['load_before']:.2f} -> {report['load_after']:.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"tiling-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
