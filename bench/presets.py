"""Coarse to fine or not, at the same steps: the final full-size loss, the work and the seconds of each.

    python bench/presets.py                                   # High's shape at half size: 384 px, 250 steps
    python bench/presets.py --size 768 --steps 500 --variants 1 ladder:512   # High itself (slow on a CPU)
    python bench/presets.py --size 512 --steps 400 --variants ladder:128 0.125,0.25,0.5,1  # Print at 1/4

A variant is a list of scales ("1": one size, "0.5,1") or "ladder:START" (option ladder_start).
Decides whether a preset may go coarse to fine (core/options.py PRESETS): it may when its loss is no
worse than the one-size run's. Each variant runs in this process one after the other, on the same
extractor (random weights: the objective is the same function of the image, whatever the weights).
Prints a table and writes JSON under bench/results/.
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
RESULTS = ROOT / "bench" / "results"
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--variants", nargs="+", default=["1", "ladder:256"])
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument(
        "--weights", default="random", help="random (seeded) or imagenet (needs the weights file)"
    )
    args = parser.parse_args()

    from engine import machine_info, test_images

    from spec.options import StyleOptions
    from worker.engine import RunImages, load_extractor, stylize
    from worker.engine.images import to_uint8

    content, style = (to_uint8(image) for image in test_images(args.size))
    extractor = load_extractor(weights=args.weights, precision=args.precision)
    rows = []
    for text in args.variants:
        options = StyleOptions(max_size=args.size, iterations=args.steps, **_coarse_to_fine(text))
        images = RunImages(content, [style])
        plan = images.plan(options)
        work = plan.full_size_steps()
        started = time.perf_counter()
        result = stylize(plan, images, extractor)
        seconds = time.perf_counter() - started
        loss = result.loss_final
        rows.append(
            {
                "variant": text,
                "plan": [(rung.height, rung.width, rung.steps) for rung in plan.rungs],
                "work": round(work, 1),
                "loss_final": loss,
                "seconds": round(seconds, 1),
            }
        )
        print(
            f"{text:>22}  work {work:6.1f}  loss {loss['total']:.5g} "
            f"(style {loss['style']:.4g})  {seconds:7.1f} s",
            flush=True,
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"presets-{stamp}.json"
    meta = {
        "size": args.size,
        "steps": args.steps,
        "precision": args.precision,
        "weights": args.weights,
        "machine": {**machine_info(), "load_average_after": os.getloadavg()},
    }
    out.write_text(json.dumps({**meta, "rows": rows}, indent=2))
    print(f"written {out}")


def _coarse_to_fine(variant: str) -> dict[str, object]:
    if variant.startswith("ladder:"):
        return {"ladder_start": int(variant.removeprefix("ladder:"))}
    return {"scales": tuple(float(part) for part in variant.split(","))}


if __name__ == "__main__":
    main()
