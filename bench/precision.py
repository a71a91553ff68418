"""Is bfloat16 harmless? The loss curves and output images of float32 and mixed_bfloat16 compared.

    python bench/precision.py --weights random                  # 128 and 256 px, 100 Adam steps
    python bench/precision.py --sizes 64 --steps 20

For each size and start (the content image, as the service starts; seeded noise, as the classic
method does), the same run in float32 and in mixed_bfloat16: the largest relative difference of
the total loss over the steps (each step's loss is that of the image it started from), the final
losses, and the PSNR of the bfloat16 output against the float32 one (uint8 images, peak 255).
Prints the table and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def psnr(a, b) -> float:  # noqa: ANN001 (uint8 arrays)
    import numpy as np

    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def compare(extractors: dict, size: int, init: str, steps: int) -> dict:
    """One run per precision from the same start; the bfloat16 curve and image against float32's."""
    from engine import test_images

    from spec.options import StyleOptions
    from worker.engine import Hooks, RunImages, stylize
    from worker.engine.images import to_uint8

    content, style = (to_uint8(image) for image in test_images(size))
    options = StyleOptions(max_size=size, iterations=steps, init=init)
    runs = {}
    for precision, extractor in extractors.items():
        curve: list[float] = []
        started = time.perf_counter()
        images = RunImages(content, [style])
        hooks = Hooks(on_progress=lambda progress, curve=curve: curve.append(progress.loss["total"]))
        result = stylize(images.plan(options), images, extractor, hooks)
        runs[precision] = {"curve": curve, "result": result, "seconds": time.perf_counter() - started}
    exact, fast = runs["float32"], runs["mixed_bfloat16"]
    deviations = [abs(b - a) / abs(a) for a, b in zip(exact["curve"], fast["curve"], strict=True)]
    worst = max(range(len(deviations)), key=deviations.__getitem__)
    return {
        "size": size,
        "init": init,
        "steps": steps,
        "max_relative_loss_difference": deviations[worst],
        "at_step": worst + 1,
        "final_relative_loss_difference": deviations[-1],
        "loss_initial": exact["curve"][0],
        "loss_final_float32": exact["result"].loss_final["total"],
        "loss_final_bfloat16": fast["result"].loss_final["total"],
        "psnr_db": psnr(exact["result"].image, fast["result"].image),
        "seconds_float32": exact["seconds"],
        "seconds_bfloat16": fast["seconds"],
        "curve_float32": exact["curve"],
        "curve_bfloat16": fast["curve"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="128,256")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--inits", default="content,noise")
    parser.add_argument("--weights", default=os.environ.get("ATELIER_WEIGHTS", "imagenet"))
    args = parser.parse_args()

    from worker.engine import load_extractor

    extractors = {
        precision: load_extractor(args.weights, ROOT / "data" / "models", precision=precision)
        for precision in ("float32", "mixed_bfloat16")
    }
    print(f"{args.steps} Adam steps, default loss weights; bfloat16 against float32")
    print(f"{'size':>5} {'start':>8} {'max |dL|/L':>11} {'at step':>8} {'final |dL|/L':>13} "
          f"{'final L fp32':>13} {'final L bf16':>13} {'PSNR dB':>8} {'s fp32':>7} "
          f"{'s bf16':>7}")  # fmt: skip
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for init in args.inits.split(","):
            row = compare(extractors, size, init, args.steps)
            rows.append(row)
            print(f"{size:>5} {init:>8} {row['max_relative_loss_difference']:>10.3%} {row['at_step']:>8} "
                  f"{row['final_relative_loss_difference']:>12.3%} {row['loss_final_float32']:>13.5g} "
                  f"{row['loss_final_bfloat16']:>13.5g} {row['psnr_db']:>8.1f} "
                  f"{row['seconds_float32']:>7.1f} {row['seconds_bfloat16']:>7.1f}", flush=True)  # fmt: skip
    out = ROOT / "bench" / "results" / f"precision-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows, "load_average": os.getloadavg()}, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
