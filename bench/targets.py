"""Style targets: what the worker's style target cache saves, and how soon a Print job shows a step.

    python bench/targets.py cost                  # cold vs warm targets at 256, 512, 1024 px
    python bench/targets.py hits                  # hit rate over 6 jobs reusing 3 paintings
    python bench/targets.py first-step            # Print (2048 px, ladder from 512): start -> step 1
    python bench/targets.py first-step --cache-mb 0   # the same without a cache
    make bench-targets                            # all three

``cost``: the seconds a job spends on its targets (content and style, every rung) with an empty
cache and with the painting's targets already cached, at 256, 512, 1024 px and for Print (a 2048 px
ladder from 512, by tiles): the difference is the fixed cost a second job with the same painting
no longer pays. ``hits``: six short jobs over three paintings from
/work/shared/examples/styles in one warm process (one cache), its hits and misses. ``first-step``:
seconds from stylize()'s start to its first progress report for the Print preset, in a fresh
process and in a warm one. Random weights
(the same arithmetic as ImageNet's), the precision the worker's ``auto`` picks here. Prints tables
and writes JSON under bench/results/.
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
EXAMPLES = Path(os.environ.get("ATELIER_EXAMPLES", "/work/shared/examples"))
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
PAINTINGS = ("van-gogh-starry-night.jpg", "hokusai-great-wave.jpg", "munch-the-scream.jpg")
CONTENT = "astronaut.png"


def _image(path: Path, longest: int | None = None):  # noqa: ANN202 - numpy is imported late
    from worker.engine.images import load_image, resize_to_longest

    image = load_image(path.read_bytes())
    return image if longest is None else resize_to_longest(image, longest)


def _extractor(precision: str):  # noqa: ANN202
    from worker.engine import load_extractor

    return load_extractor(weights="random", precision=precision, step_cache_size=8)


def first_step(args: argparse.Namespace) -> list[dict]:
    """Seconds from stylize()'s start to its first progress report for the Print preset: a fresh
    process's first job, then (warm: compiled steps kept) a job with another painting and one with
    the first painting again (its targets cached, when this engine has a cache)."""
    from core.options import PRESETS
    from spec.options import StyleOptions
    from spec.plan import Limits
    from worker.engine import Hooks, RunImages, stylize
    from worker.engine.tiling import resolve_tile_pixels

    preset = PRESETS["print"]
    options = StyleOptions(max_size=preset.size, iterations=preset.iterations, **dict(preset.options))
    content = _image(EXAMPLES / "photos" / CONTENT, preset.size)  # 2048 x 2048
    extractor = _extractor(args.precision)
    cache = _cache(args.cache_mb)
    rows = []
    for job, painting in (("first job", PAINTINGS[0]), ("another painting", PAINTINGS[1]),
                          ("the first painting again", PAINTINGS[0])):  # fmt: skip
        images = RunImages(content, [_image(EXAMPLES / "styles" / painting)])
        plan = images.plan(options, Limits(max_tile_pixels=resolve_tile_pixels(None)))
        seen: list[float] = []
        hooks = Hooks(
            on_progress=lambda progress, seen=seen: seen.append(time.perf_counter()),
            should_stop=lambda seen=seen: bool(seen),
        )
        started = time.perf_counter()
        stylize(plan, images, extractor, hooks, **({"style_cache": cache} if cache is not None else {}))
        rows.append(
            {
                "job": job,
                "painting": painting,
                "rungs": [f"{rung.width}x{rung.height}:{rung.steps}" for rung in plan.rungs],
                "precision": extractor.precision,
                "first_step_seconds": round(seen[0] - started, 2),
                "stopped_after_seconds": round(time.perf_counter() - started, 2),
            }
        )
    print(f"Print ({' '.join(rows[0]['rungs'])}), {extractor.precision}")
    print(f"{'job':<26} {'first step s':>12} {'stopped s':>10}")
    for row in rows:
        print(f"{row['job']:<26} {row['first_step_seconds']:>12.2f} {row['stopped_after_seconds']:>10.2f}")
    return rows


def _cache(megabytes: int):  # noqa: ANN202 - None: no cache (set to 0, or an engine without one)
    try:
        from worker.engine.style_cache import StyleTargetCache
    except ImportError:  # the engine before the cache (to measure what it did)
        return None
    return StyleTargetCache(megabytes * 2**20) if megabytes else None


def cost(args: argparse.Namespace) -> list[dict]:
    """The targets' seconds per job at each size (every rung; content and style), with an empty cache
    and with the painting's targets cached: the difference is the fixed cost a cached painting saves."""
    import numpy as np

    from core.options import PRESETS
    from spec.options import StyleOptions
    from spec.plan import Limits, RunPlan
    from worker.engine import RunImages
    from worker.engine.optimize import _targets_at
    from worker.engine.style_cache import StyleLookup, StyleTargetCache
    from worker.engine.tiling import resolve_tile_pixels

    extractor = _extractor(args.precision)
    style = _image(EXAMPLES / "styles" / PAINTINGS[0])
    rows = []
    print_preset = PRESETS["print"]
    jobs = [(str(size), StyleOptions(max_size=size)) for size in args.sizes]
    jobs.append(("print", StyleOptions(max_size=print_preset.size, **dict(print_preset.options))))
    for name, options in jobs:
        content = _image(EXAMPLES / "photos" / CONTENT, options.max_size)
        plan = RunImages(content, [style]).plan(options, Limits(max_tile_pixels=resolve_tile_pixels(None)))

        def targets(cache: StyleTargetCache, content: np.ndarray = content, plan: RunPlan = plan) -> float:
            started = time.perf_counter()
            lookup = StyleLookup(cache, extractor, [style])  # hashes the painting: part of the cost
            for rung in plan.rungs:
                _targets_at(
                    extractor, content, [style], plan.options, rung.height, rung.width, rung.style_side,
                    max_tile_pixels=plan.max_tile_pixels, lookup=lookup,
                )  # fmt: skip
            return time.perf_counter() - started

        warm_cache = StyleTargetCache(args.cache_mb * 2**20)
        targets(warm_cache)  # traces the target function and fills the cache
        cold = min(targets(StyleTargetCache(args.cache_mb * 2**20)) for _ in range(args.repeats))
        warm = min(targets(warm_cache) for _ in range(args.repeats))
        rows.append(
            {
                "size": name,
                "rungs": len(plan.rungs),
                "style_side": plan.rungs[-1].style_side,
                "cold_seconds": round(cold, 3),
                "warm_seconds": round(warm, 3),
                "saved_seconds": round(cold - warm, 3),
                "entry_mb": round(warm_cache.bytes / 2**20, 2),
            }
        )
    print(f"{'size':>6} {'rungs':>5} {'targets cold s':>15} {'warm s':>8} {'saved s':>8} {'entry MB':>9}")
    for row in rows:
        print(
            f"{row['size']:>6} {row['rungs']:>5} {row['cold_seconds']:>15.3f} {row['warm_seconds']:>8.3f} "
            f"{row['saved_seconds']:>8.3f} {row['entry_mb']:>9.2f}"
        )
    return rows


def hits(args: argparse.Namespace) -> dict:
    """Six short jobs over three paintings in one process (one cache): hits, misses, seconds."""
    from spec.options import StyleOptions
    from worker.engine import Hooks, RunImages, stylize
    from worker.engine.style_cache import StyleTargetCache

    extractor = _extractor(args.precision)
    cache = StyleTargetCache(args.cache_mb * 2**20)
    content = _image(EXAMPLES / "photos" / CONTENT, args.size)
    paintings = {name: _image(EXAMPLES / "styles" / name) for name in PAINTINGS}
    order = [PAINTINGS[i] for i in (0, 1, 0, 2, 1, 0)]
    jobs = []
    for name in order:
        images = RunImages(content, [paintings[name]])
        plan = images.plan(StyleOptions(max_size=args.size, iterations=args.steps))
        before = (cache.hits, cache.misses)
        result = stylize(plan, images, extractor, Hooks(), style_cache=cache)
        jobs.append(
            {
                "style": name,
                "hit": cache.hits > before[0],
                "seconds": round(result.seconds, 2),
            }
        )
    summary = {
        "size": args.size,
        "steps": args.steps,
        "jobs": jobs,
        "hits": cache.hits,
        "misses": cache.misses,
        "hit_rate": round(cache.hits / max(cache.hits + cache.misses, 1), 3),
        "cache_bytes": cache.bytes,
    }
    print(f"{'job':>4} {'painting':<28} {'targets':<8} {'seconds':>8}")
    for number, job in enumerate(jobs, start=1):
        print(f"{number:>4} {job['style']:<28} {'hit' if job['hit'] else 'miss':<8} {job['seconds']:>8.2f}")
    print(f"hits {cache.hits}, misses {cache.misses}: hit rate {summary['hit_rate']:.0%}, "
          f"{cache.bytes / 2**20:.1f} MB cached")  # fmt: skip
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", nargs="*", default=["cost", "hits", "first-step"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--size", type=int, default=256, help="hits: the jobs' size")
    parser.add_argument("--steps", type=int, default=5, help="hits: the jobs' steps")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-mb", type=int, default=256)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()

    from engine import machine_info

    report: dict = {"machine": machine_info(), "when": datetime.now(UTC).isoformat(timespec="seconds")}
    report["load_before"] = os.getloadavg()[0]
    print(f"{report['machine']['cpu']}, {report['machine']['cores']} cores, {report['machine']['cpu_flags']}")
    modes = {"cost": cost, "hits": hits, "first-step": first_step}
    for what in args.what:
        report[what] = modes[what](args)
    report["load_after"] = os.getloadavg()[0]
    print(f"load average (1 min): {report['load_before']:.2f} before, {report['load_after']:.2f} after")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"targets-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"written {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
