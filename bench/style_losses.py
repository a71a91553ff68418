"""What each style loss costs: milliseconds per Adam step and peak memory, against gram (issue 24).

    python bench/style_losses.py                # gram, mean_cov, w2, sliced_w; 256, 512 px; bf16, fp32
    python bench/style_losses.py --sizes 256 --losses gram,w2 --precisions mixed_bfloat16 --steps 6

Every configuration runs in its own Python process, so its peak resident memory (ru_maxrss) is its
own. A step is timed from just before it starts (``should_stop``) to its progress report; the first
(tracing) is left out; the median of the rest. Random weights, content and style images of the
size, default options otherwise. Prints a table (each loss's step against gram's at the same size
and precision) and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def measure(loss: str, size: int, precision: str, steps: int) -> dict:
    """One configuration in this process: a size x size Adam run of ``steps`` steps."""
    from engine import test_images

    from spec.options import StyleOptions
    from worker.engine import Hooks, RunImages, load_extractor, stylize
    from worker.engine.images import to_uint8

    content, style = (to_uint8(image) for image in test_images(size))
    extractor = load_extractor(weights="random", precision=precision)
    starts: list[tuple[float, float]] = []  # (wall, CPU of all threads) just before each step
    ends: list[tuple[float, float]] = []

    def before_step() -> bool:
        starts.append((time.perf_counter(), time.process_time()))
        return False

    images = RunImages(content, [style])
    hooks = Hooks(
        on_progress=lambda _: ends.append((time.perf_counter(), time.process_time())), should_stop=before_step
    )
    result = stylize(
        images.plan(StyleOptions(max_size=size, iterations=steps, style_loss=loss)), images, extractor, hooks
    )
    seconds = [end[0] - start[0] for start, end in zip(starts, ends, strict=False)]
    cpu = [end[1] - start[1] for start, end in zip(starts, ends, strict=False)]
    return {
        "loss": loss,
        "size": size,
        "precision": precision,
        "ms_per_step": statistics.median(seconds[1:] or seconds) * 1000,
        "cpu_ms_per_step": statistics.median(cpu[1:] or cpu) * 1000,
        "first_step_ms": seconds[0] * 1000,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "style_loss_initial": result.loss_initial["style"],
        "style_loss_final": result.loss_final["style"],
    }


def run_child(loss: str, size: int, precision: str, steps: int, sliced: tuple[int, int]) -> dict:
    command = [sys.executable, __file__, "--child", loss, str(size), precision, "--steps", str(steps),
               "--sliced-directions", str(sliced[0]), "--sliced-style-pixels", str(sliced[1])]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        return {"loss": loss, "size": size, "precision": precision, "error": completed.stderr.strip()[-2000:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--losses", default="gram,mean_cov,w2,sliced_w")
    parser.add_argument("--precisions", default="mixed_bfloat16,float32")
    parser.add_argument("--steps", type=int, default=5, help="Adam steps per run (the first is not timed)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration, interleaved; medians")
    parser.add_argument(
        "--sliced-directions",
        type=int,
        default=None,
        help="sliced_w's directions per layer (losses.SLICED_DIRECTIONS; 0: as many as channels)",
    )
    parser.add_argument(
        "--sliced-style-pixels",
        type=int,
        default=None,
        help="sliced_w's style pixels per layer (losses.SLICED_STYLE_PIXELS; 0: all)",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from worker.engine import losses

    if args.sliced_directions is not None:
        losses.SLICED_DIRECTIONS = args.sliced_directions
    if args.sliced_style_pixels is not None:
        losses.SLICED_STYLE_PIXELS = args.sliced_style_pixels
    sliced = (losses.SLICED_DIRECTIONS, losses.SLICED_STYLE_PIXELS)
    if args.child:
        loss, size, precision = args.child
        print(json.dumps(measure(loss, int(size), precision, args.steps)))
        return

    load_before = os.getloadavg()[0]
    configs = [
        (precision, int(size), loss)
        for precision in args.precisions.split(",")
        for size in args.sizes.split(",")
        for loss in args.losses.split(",")
    ]
    samples: dict[tuple, list[dict]] = {config: [] for config in configs}
    for _ in range(args.repeat):  # interleaved: a busy spell of the shared machine spreads over all
        for precision, size, loss in configs:
            samples[precision, size, loss].append(run_child(loss, size, precision, args.steps, sliced))
    rows: list[dict] = []
    print(f"{'precision':>15} {'size':>5} {'loss':>9} {'ms/step':>8} {'x gram':>7} {'CPU ms':>7} "
          f"{'x gram':>7} {'peak MiB':>9}")  # fmt: skip
    for precision, size, loss in configs:
        found = [row for row in samples[precision, size, loss] if "error" not in row]
        if not found:
            error = samples[precision, size, loss][0]["error"].splitlines()[-1]
            print(f"{precision:>15} {size:>5} {loss:>9} failed: {error}", flush=True)
            continue
        row = {
            **found[0],
            "ms_per_step": statistics.median(r["ms_per_step"] for r in found),
            "ms_per_step_samples": [r["ms_per_step"] for r in found],
            "cpu_ms_per_step": statistics.median(r["cpu_ms_per_step"] for r in found),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in found),
        }
        rows.append(row)
        gram = [r for r in rows if (r["precision"], r["size"], r["loss"]) == (precision, size, "gram")]
        ratio = f"{row['ms_per_step'] / gram[0]['ms_per_step']:>7.2f}" if gram else f"{'':>7}"
        cpu_ratio = f"{row['cpu_ms_per_step'] / gram[0]['cpu_ms_per_step']:>7.2f}" if gram else f"{'':>7}"
        print(f"{precision:>15} {size:>5} {loss:>9} {row['ms_per_step']:>8.0f} {ratio} "
              f"{row['cpu_ms_per_step']:>7.0f} {cpu_ratio} {row['peak_rss_mib']:>9.0f}",
              flush=True)  # fmt: skip
    out = ROOT / "bench" / "results" / f"style-losses-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    load = (load_before, os.getloadavg()[0])
    out.write_text(
        json.dumps({"args": vars(args), "sliced": sliced, "rows": rows, "load_average": load}, indent=2)
    )
    print(f"sliced_w: {sliced[0] or 'channels'} directions per layer, {sliced[1] or 'all'} style pixels")
    print(f"load average {load[0]:.1f} -> {load[1]:.1f}; wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
