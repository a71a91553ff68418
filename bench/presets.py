"""Coarse to fine or not, at the same steps: the final full-size loss and the seconds of each.

    python bench/presets.py                                   # High's shape at half size: 384 px, 250 steps
    python bench/presets.py --size 768 --steps 500            # the High preset itself (slow on a CPU)
    python bench/presets.py --scales 1 0.5,1 0.125,0.25,0.5,1

Decides whether a preset may use scales (core/options.py PRESETS): it may when its loss is no worse
than the single-scale run's. Each variant runs in this process one after the other, on the same
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
    parser.add_argument("--scales", nargs="+", default=["1", "0.5,1", "0.25,0.5,1"])
    parser.add_argument("--precision", default="mixed_bfloat16")
    args = parser.parse_args()

    from engine import machine_info, test_images

    from worker.engine import StyleOptions, load_extractor, stylize
    from worker.engine.images import to_uint8

    content, style = (to_uint8(image) for image in test_images(args.size))
    extractor = load_extractor(weights="random", precision=args.precision)
    rows = []
    for text in args.scales:
        scales = tuple(float(part) for part in text.split(","))
        options = StyleOptions(max_size=args.size, iterations=args.steps, scales=scales)
        started = time.perf_counter()
        result = stylize(content, [style], options, extractor=extractor)
        seconds = time.perf_counter() - started
        rows.append({"scales": text, "loss_final": result.loss_final, "seconds": round(seconds, 1)})
        loss = result.loss_final
        print(
            f"{text:>22}  loss {loss['total']:.5g} (style {loss['style']:.4g})  {seconds:7.1f} s", flush=True
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"presets-{stamp}.json"
    meta = {
        "size": args.size,
        "steps": args.steps,
        "precision": args.precision,
        "machine": {**machine_info(), "load_average_after": os.getloadavg()},
    }
    out.write_text(json.dumps({**meta, "rows": rows}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
