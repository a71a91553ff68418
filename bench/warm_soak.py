"""A warm worker's memory over mixed sizes: one process runs jobs of more sizes than its step cache
keeps, round after round, and prints its resident memory after each round. Bounded means the
rounds after the first level off instead of growing with every job.

    python bench/warm_soak.py --weights random                    # 6 sizes, 4 rounds, 3 steps a job
    python bench/warm_soak.py --sizes 64,96,128,160,192,224 --rounds 6
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def rss_mib() -> float:
    """Resident memory now (not the peak), from /proc/self/statm."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="64,96,128,160,192,224")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--weights", default=os.environ.get("ATELIER_WEIGHTS", "imagenet"))
    args = parser.parse_args()

    from engine import test_images

    from spec.options import StyleOptions
    from worker.engine import RunImages, load_extractor, stylize
    from worker.engine.images import to_uint8

    sizes = [int(s) for s in args.sizes.split(",")]
    extractor = load_extractor(args.weights, ROOT / "data" / "models", precision="auto")
    images = {size: [to_uint8(image) for image in test_images(size)] for size in sizes}
    print(f"{len(sizes)} sizes, step cache of {extractor.step_cache_size}, precision {extractor.precision}")
    print(f"{'round':>5} {'RSS MiB':>8} {'peak MiB':>9} {'warm jobs':>10} {'seconds':>8}")
    for round_number in range(1, args.rounds + 1):
        started, warm = time.perf_counter(), 0
        for size in sizes:
            content, style = images[size]
            run = RunImages(content, [style])
            result = stylize(run.plan(StyleOptions(max_size=size, iterations=args.steps)), run, extractor)
            warm += result.warm_start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        seconds = time.perf_counter() - started
        print(f"{round_number:>5} {rss_mib():>8.0f} {peak:>9.0f} {warm:>10} {seconds:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
