"""Do tiled and untiled runs agree under bfloat16 as they do in float32? (issue 19: one Gram dtype policy)

    python bench/tiled_precision.py                      # 768 px, 2 Adam steps, tiles of 288 x 288
    python bench/tiled_precision.py --size 512 --tile 256 --steps 3
    PYTHONPATH=/path/to/an/older/checkout python bench/tiled_precision.py   # the same against it

For float32 and mixed_bfloat16, one run untiled and one by tiles (max_tile_pixels = tile x tile),
random weights, the content start, from the same images: the relative difference of the final
losses (tiled against untiled, and each bfloat16 run against the untiled float32 one), and the
largest pixel difference of the outputs (uint8). Prints a table and writes JSON under bench/results/.
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
sys.path.append(str(ROOT))  # after PYTHONPATH: an older checkout's engine may be measured instead


def run(extractor: object, size: int, steps: int, tile_pixels: int) -> dict:
    from engine import test_images

    from spec.options import StyleOptions
    from spec.plan import Limits
    from worker.engine import RunImages, stylize
    from worker.engine.images import to_uint8

    content, style = (to_uint8(image) for image in test_images(size))
    images = RunImages(content, [style])
    plan = images.plan(StyleOptions(max_size=size, iterations=steps), Limits(max_tile_pixels=tile_pixels))
    assert plan.rungs[-1].tiled == bool(tile_pixels)
    started = time.perf_counter()
    result = stylize(plan, images, extractor)
    seconds = time.perf_counter() - started
    return {"loss": result.loss_final["total"], "image": result.image, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=768)
    parser.add_argument("--tile", type=int, default=288, help="tiles of at most TILE x TILE pixels")
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()

    import numpy as np

    import worker.engine
    from worker.engine import load_extractor

    runs = {}
    for precision in ("float32", "mixed_bfloat16"):
        extractor = load_extractor("random", precision=precision)
        for tile_pixels in (0, args.tile * args.tile):
            runs[precision, bool(tile_pixels)] = run(extractor, args.size, args.steps, tile_pixels)
    reference = runs["float32", False]

    def apart(a: dict, b: dict) -> tuple[float, int]:
        pixels = int(np.abs(a["image"].astype(int) - b["image"]).max())
        return abs(a["loss"] - b["loss"]) / abs(b["loss"]), pixels

    engine = str(Path(worker.engine.__file__).resolve().parent.parent.parent)
    print(f"{args.size} px, {args.steps} Adam steps, tiles of {args.tile}x{args.tile}; engine from {engine}")
    print(f"{'precision':>15} {'tiled vs untiled |dL|/L':>24} {'max px':>7} {'untiled vs fp32':>16} "
          f"{'tiled vs fp32':>14} {'s untiled':>10} {'s tiled':>8}")  # fmt: skip
    rows = []
    for precision in ("float32", "mixed_bfloat16"):
        whole, tiled = runs[precision, False], runs[precision, True]
        loss_gap, pixel_gap = apart(tiled, whole)
        row = {
            "precision": precision,
            "tiled_vs_untiled": loss_gap,
            "tiled_vs_untiled_max_pixel": pixel_gap,
            "untiled_vs_float32": apart(whole, reference)[0],
            "tiled_vs_float32": apart(tiled, reference)[0],
            "loss_untiled": whole["loss"],
            "loss_tiled": tiled["loss"],
            "seconds_untiled": whole["seconds"],
            "seconds_tiled": tiled["seconds"],
        }
        rows.append(row)
        print(f"{precision:>15} {loss_gap:>24.2e} {pixel_gap:>7} {row['untiled_vs_float32']:>16.2e} "
              f"{row['tiled_vs_float32']:>14.2e} {whole['seconds']:>10.1f} "
              f"{tiled['seconds']:>8.1f}")  # fmt: skip
    out = ROOT / "bench" / "results" / f"tiled-precision-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"args": vars(args), "engine": engine, "rows": rows, "load_average": os.getloadavg()}
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
