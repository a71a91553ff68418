"""What the picture controls (worker/engine/control.py) cost: one loss-and-gradient evaluation.

    python bench/control.py --size 128 --repeat 15      # time, variants interleaved, min kept
    python bench/control.py --size 512 --memory          # peak resident memory, one process each

Variants, all with two style images: ``gram`` (today's loss), ``mean_cov``, ``masks`` (two
complementary masks), ``average`` (average pooling). Random weights: the cost of a step does not
depend on the weights' values. Never run by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("gram", "mean_cov", "masks", "average")


def _evaluation(variant: str, size: int) -> tuple[Any, Any, Any]:
    """The compiled loss-and-gradient of one variant, its image and its targets (traced once)."""
    import numpy as np
    import tensorflow as tf

    from spec.options import StyleOptions
    from tests.engine.conftest import gradient, stripes
    from worker.engine import control as controls
    from worker.engine import load_extractor
    from worker.engine.objective import loss_and_gradient
    from worker.engine.optimize import _targets_at, loss_weights

    extractor = load_extractor("random", seed=0)
    if variant == "average":
        extractor = controls.with_pooling(extractor, "average")
    content = gradient(size, size)
    styles = [stripes(128, 128), stripes(128, 128)[:, ::-1].copy()]
    options = StyleOptions(max_size=size, style_loss="mean_cov" if variant == "mean_cov" else "gram")
    left = np.zeros((size, size), np.uint8)
    left[:, : size // 2] = 255
    masks = [left, 255 - left] if variant == "masks" else None
    plan = controls.prepare(options, content, styles, masks)
    targets = _targets_at(extractor, content, styles, options, size, size, size, plan)  # style side: size
    weights = loss_weights(options).as_tensors()
    function = tf.function(lambda image, targets: loss_and_gradient(extractor, weights, image, targets))
    image = tf.constant(content[None] / 255.0, tf.float32)
    function(image, targets)[1].numpy()  # trace
    return function, image, targets


def _timings(size: int, repeat: int) -> dict[str, float]:
    compiled = {variant: _evaluation(variant, size) for variant in VARIANTS}
    best = dict.fromkeys(VARIANTS, float("inf"))
    for _ in range(repeat):  # interleaved: a burst of load from other processes hits all alike
        for variant, (function, image, targets) in compiled.items():
            started = time.perf_counter()
            function(image, targets)[1].numpy()
            best[variant] = min(best[variant], time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--memory", action="store_true", help="peak memory, one process per variant")
    parser.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)  # a --memory child
    args = parser.parse_args()
    if args.one:
        function, image, targets = _evaluation(args.one, args.size)
        function(image, targets)[1].numpy()
        print(json.dumps({"maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
        return
    load = os.getloadavg()[0]
    if args.memory:
        for variant in VARIANTS:
            command = [sys.executable, __file__, "--size", str(args.size), "--one", variant]
            done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
            peak = json.loads(done.stdout.strip().splitlines()[-1])["maxrss_mb"]
            print(f"{variant:9s} {args.size} px: peak {peak:7.0f} MB")
        return
    best = _timings(args.size, args.repeat)
    for variant, seconds in best.items():
        print(f"{variant:9s} {args.size} px: {1000 * seconds:7.1f} ms  {seconds / best['gram']:.2f}x")
    print(f"(load average at the start: {load:.1f})")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
