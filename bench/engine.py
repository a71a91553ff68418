"""Engine benchmark: ms per step, GFLOP/s and peak memory of the engine, an earlier version of it,
a PyTorch implementation of the same objective and a naive baseline, interleaved in one run.

    python bench/engine.py --weights random --sizes 128,256,512 --repeat 3 \
        --variants engine,fp32,torch,before --before /tmp/atelier-before --skip-quality --skip-multiscale
    python bench/engine.py --sizes 128 --steps 10 --variants engine,bf16,naive

Tables: (1) ms per step for each variant: ``engine`` (default settings: ATELIER_PRECISION=auto),
``fp32`` / ``bf16`` (precision forced), ``bf16-gram32`` (bfloat16 with float32 Gram matrices),
``xla``, ``before`` / ``before-bf16`` (the engine of another checkout, --before, e.g. ``git
archive <commit>`` unpacked: before/after in one run), ``torch`` / ``torch-bf16``
(bench/peer_torch.py; needs the ``bench`` extra), ``naive`` (bench/naive.py); with
achieved GFLOP/s against the CPU's measured matmul peak; (1b) fixed cost per job: process start to
first step, first job and second job of the same size in one process, and the CLI's start-up;
(2) time to 10% of the initial loss, Adam vs L-BFGS; (3) coarse-to-fine against one scale.

Each measurement runs in a fresh Python process, so its peak resident memory (ru_maxrss) is its
own and one run's compiled graphs cannot warm up the next; with --repeat the variants are
interleaved (so a burst of load from other processes hits all of them alike) and the median kept.
Prints the tables and writes JSON with the machine's description and load under bench/results/.

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
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
# A "before" child imports the engine of another checkout (--before): its root goes first.
ENGINE_ROOT = Path(os.environ.get("ATELIER_BENCH_ENGINE_ROOT", ROOT))
sys.path[:0] = [str(ENGINE_ROOT), str(ROOT / "bench")]


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


# Table 1's variants: (load_extractor precision, jit_compile); None = the checkout's own default
# (ATELIER_PRECISION's default: auto now, float32 before). "naive" is bench/naive.py, "torch*"
# bench/peer_torch.py; "before*" run ENGINE_VARIANTS' engine of the --before checkout.
ENGINE_VARIANTS = {
    "engine": (None, False),
    "fp32": ("float32", False),
    "xla": ("float32", True),
    "bf16": ("mixed_bfloat16", False),
    "bf16-xla": ("mixed_bfloat16", True),
}
BEFORE_VARIANTS = {"before": "fp32", "before-bf16": "bf16"}  # the default before was float32
TORCH_VARIANTS = {"torch": "float32", "torch-bf16": "bfloat16"}
# FLOP per step: VGG19 to block5_conv2 forward, the gradient with respect to its input (the same
# convolutions again, transposed; no weight gradients), and the Gram matrices forward and backward.
CONVS = (  # (stride, input channels, output channels) up to block5_conv2
    (1, 3, 64), (1, 64, 64), (2, 64, 128), (2, 128, 128), (4, 128, 256), (4, 256, 256), (4, 256, 256),
    (4, 256, 256), (8, 256, 512), (8, 512, 512), (8, 512, 512), (8, 512, 512), (16, 512, 512),
    (16, 512, 512),
)  # fmt: skip
GRAMS = ((1, 64), (2, 128), (4, 256), (8, 512), (16, 512))  # (stride, channels) of the style layers


def step_flop(size: int) -> float:
    """FLOP of one Adam step on a size x size image (multiply-add = 2 FLOP)."""
    convs = sum(2 * 9 * cin * cout * (size // stride) ** 2 for stride, cin, cout in CONVS)
    grams = sum(2 * channels**2 * (size // stride) ** 2 for stride, channels in GRAMS)
    return 2 * convs + 3 * grams


def engine_precision(precision: str | None) -> str:
    """The precision a variant runs: its own, or the checkout's settings default resolved."""
    if precision is not None:
        return precision
    from core.settings import Settings

    default = Settings.model_fields["precision"].default
    if default != "auto":
        return default
    from worker.engine.model import resolve_precision

    return resolve_precision("auto")


MULTISCALE = (0.25, 0.5, 1.0)


def measure_engine(
    size: int, steps: int, warmup: int, weights: str, precision: str | None = None, jit_compile: bool = False
) -> dict:
    from spec.options import StyleOptions
    from worker.engine import Hooks, RunImages, load_extractor, stylize
    from worker.engine.images import to_uint8

    content, style = test_images(size)
    precision = engine_precision(precision)
    extractor = load_extractor(
        weights=weights, model_dir=ROOT / "data" / "models", precision=precision, jit_compile=jit_compile
    )
    stamps: list[tuple[float, float]] = []
    options = StyleOptions(max_size=size, iterations=warmup + steps)
    images = RunImages(to_uint8(content), [to_uint8(style)])
    stamp = Hooks(on_progress=lambda _: stamps.append((time.perf_counter(), time.process_time())))
    stylize(images.plan(options), images, extractor, stamp)
    return {**step_times(stamps[warmup:]), "precision": precision}


def measure_torch(size: int, steps: int, warmup: int, precision: str) -> dict:
    import torch
    from peer_torch import TorchStylizer

    content, style = test_images(size)
    stylizer = TorchStylizer(content, style, precision)
    return {**timed_steps(stylizer.step, steps, warmup), "precision": precision, "torch": torch.__version__}


def measure_fixed_cost(size: int, weights: str, precision: str | None, started: float) -> dict:
    """Seconds before the first step of two jobs of the same size in one fresh process: the first
    (cold: imports, extractor, tracing) and the second (warm). A job's fixed cost is the time from
    stylize() to its first step's end minus a steady step (the median of its later ones)."""
    wall_offset = time.time() - time.perf_counter()
    imported = time.perf_counter()
    from spec.options import StyleOptions
    from worker.engine import Hooks, RunImages, load_extractor, stylize
    from worker.engine.images import to_uint8

    imports = time.perf_counter() - imported
    content, style = (to_uint8(image) for image in test_images(size))
    precision = engine_precision(precision)
    built = time.perf_counter()
    extractor = load_extractor(weights=weights, model_dir=ROOT / "data" / "models", precision=precision)
    build = time.perf_counter() - built
    jobs = []
    for _ in range(2):
        stamps: list[float] = []
        begun = time.perf_counter()
        images = RunImages(content, [style])
        stamp = Hooks(on_progress=lambda _, stamps=stamps: stamps.append(time.perf_counter()))
        stylize(images.plan(StyleOptions(max_size=size, iterations=5)), images, extractor, stamp)
        steady = statistics.median(b - a for a, b in zip(stamps[1:], stamps[2:], strict=False))
        jobs.append({"fixed": stamps[0] - begun - steady, "steady": steady, "first_done": stamps[0]})
    return {
        "precision": precision,
        # ``started`` is the parent's time.time() just before it launched this process
        "python_start_to_first_step": jobs[0]["first_done"] + wall_offset - started - jobs[0]["steady"],
        "imports": imports,
        "extractor": build,
        "first_job_fixed": jobs[0]["fixed"],
        "second_job_fixed": jobs[1]["fixed"],
        "steady_step": jobs[1]["steady"],
        "peak_rss_mib": peak_rss_mib(),
    }


def measure_cli(root: Path, argv: list[str], cwd: Path) -> float:
    """Wall seconds of one ``python -m worker.cli ARGV`` of the checkout at ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root), "ATELIER_WEIGHTS": "random"}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "worker.cli", *argv], cwd=cwd, env=env, capture_output=True, check=False
    )
    return time.perf_counter() - started


def measure_peak_gflops() -> dict:
    """The CPU's practical peak: the best of a few 2048x2048 matmuls, float32 and bfloat16 (oneDNN)."""
    import tensorflow as tf

    peaks = {}
    for dtype in (tf.float32, tf.bfloat16):
        a = tf.random.uniform((2048, 2048), dtype=tf.float32)
        a = tf.cast(a, dtype)
        matmul = tf.function(lambda x: tf.matmul(x, x))
        matmul(a).numpy()
        best = min(_timed(lambda matmul=matmul, a=a: matmul(a).numpy()) for _ in range(8))
        peaks[dtype.name] = 2 * 2048**3 / best / 1e9
    return peaks


def _timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def timed_steps(step: Callable[[], object], steps: int, warmup: int) -> dict:
    """step_times of ``steps`` calls of a peer's ``step`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    stamps = [(time.perf_counter(), time.process_time())]
    for _ in range(steps):
        step()
        stamps.append((time.perf_counter(), time.process_time()))
    return step_times(stamps)


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
    return timed_steps(stylizer.step, steps, warmup)


def measure_time_to_quality(size: int, optimizer: str, max_steps: int, weights: str) -> dict:
    """Seconds (from the start of stylize, model already built) until loss < 10% of the initial."""
    from spec.options import StyleOptions
    from worker.engine import Hooks, RunImages, load_extractor, stylize
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

    images = RunImages(to_uint8(content), [to_uint8(style)])
    result = stylize(images.plan(options), images, extractor, Hooks(on_progress=on_progress))
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
    from spec.options import StyleOptions
    from worker.engine import Hooks, RunImages, load_extractor, stylize
    from worker.engine.images import to_uint8

    content, style = test_images(size)
    extractor = load_extractor(weights=weights, model_dir=ROOT / "data" / "models")
    options = StyleOptions(
        max_size=size, iterations=iterations, init=init, tv_weight=tv_weight, scales=scales
    )
    images = RunImages(to_uint8(content), [to_uint8(style)])
    plan = images.plan(options)
    first_full_step = iterations - plan.rungs[-1].steps + 1
    full_losses: list[tuple[int, float, float]] = []  # (step, loss before it, elapsed)

    def on_progress(progress) -> None:
        if progress.step >= first_full_step:
            full_losses.append((progress.step, progress.loss["total"], progress.elapsed))

    started = time.perf_counter()
    result = stylize(plan, images, extractor, Hooks(on_progress=on_progress))
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


def run_child(args: list[str], engine_root: Path | None = None) -> dict:
    """Run one measurement in a fresh interpreter (importing the engine of ``engine_root``, default
    this checkout) and return its JSON line."""
    env = dict(os.environ)
    if engine_root is not None:
        env["ATELIER_BENCH_ENGINE_ROOT"] = str(engine_root)
    completed = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False, env=env
    )
    if completed.returncode != 0:
        raise SystemExit(f"measurement {args} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def machine_info() -> dict:
    import tensorflow as tf

    from worker.engine.model import cpu_flags

    flags = cpu_flags()
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or platform.machine(),
    )  # fmt: skip
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "cpu": model,
        "cpu_flags": sorted(flag for flag in flags if flag.startswith(("avx512", "amx"))),
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
    parser.add_argument(
        "--before", type=Path, help="another checkout (e.g. unpacked `git archive`) for the before* variants"
    )
    parser.add_argument("--fixed-sizes", default="128,256", help="sizes of table 1b; empty: skip it")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        kind, size = args.child[0], int(args.child[1])
        if kind in BEFORE_VARIANTS:
            kind = BEFORE_VARIANTS[kind]
        if kind.startswith("fixed-"):
            precision = {"default": None, "fp32": "float32", "bf16": "mixed_bfloat16"}[kind.split("-", 1)[1]]
            result = measure_fixed_cost(size, args.weights, precision, float(args.child[2]))
        elif kind == "peak":
            result = measure_peak_gflops()
        elif kind in TORCH_VARIANTS:
            result = measure_torch(size, args.steps, args.warmup, TORCH_VARIANTS[kind])
        elif kind == "bf16-gram32":  # bfloat16 convolutions, float32 Gram matrices
            import worker.engine.losses

            worker.engine.losses.BFLOAT16_GRAMS = False
            result = measure_engine(size, args.steps, args.warmup, args.weights, "mixed_bfloat16")
        elif kind in ENGINE_VARIANTS:
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
    if any(v in BEFORE_VARIANTS for v in variants) and args.before is None:
        parser.error("the before variants need --before PATH (another checkout of the project)")
    peak = run_child(["peak", "0"])
    print(f"CPU matmul peak: {peak['float32']:.0f} GFLOP/s float32, {peak['bfloat16']:.0f} GFLOP/s bfloat16")
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = per_step_table(sizes, variants, args.repeat, common, args.before, peak)
    fixed_sizes = [int(s) for s in args.fixed_sizes.split(",") if s]
    fixed = fixed_cost_table(fixed_sizes, args, common) if fixed_sizes else {}
    quality = {} if args.skip_quality else quality_table(args, common)
    multiscale = {} if args.skip_multiscale else multiscale_table(args, common)

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"engine-{stamp}.json"
    machine = {**machine_info(), "load_average_before": load_before, "load_average_after": os.getloadavg()}
    report = {
        "machine": machine,
        "args": vars(args),
        "cpu_peak_gflops": peak,
        "per_step": rows,
        "fixed_cost": fixed,
        "time_to_quality": quality,
        "multiscale": multiscale,
    }
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nload average (1, 5, 15 min) before {fmt_load(load_before)}, after {fmt_load(os.getloadavg())}")
    print(f"wrote {out.relative_to(ROOT)}")


def fmt_load(load: tuple[float, ...]) -> str:
    return "/".join(f"{value:.2f}" for value in load)


def per_step_table(
    sizes: list[int], variants: list[str], repeat: int, common: list[str], before: Path | None, peak: dict
) -> list[dict]:
    """Table 1: median ms per step of each variant, GFLOP/s, and its speed-up over the naive baseline."""
    print(f"{'size':>6} {'variant':>11} {'precision':>14} {'ms/step':>9} {'CPU ms':>8} {'GFLOP/s':>8} "
          f"{'% peak':>7} {'peak MiB':>9} {'vs naive':>9}")  # fmt: skip
    rows = []
    for size in sizes:
        runs: dict[str, list[dict]] = {variant: [] for variant in variants}
        for _ in range(repeat):  # interleaved, so a burst of load hits every variant alike
            for variant in variants:
                root = before if variant in BEFORE_VARIANTS else None
                runs[variant].append(run_child([variant, str(size), *common], root))
        results = {}
        for variant, measured in runs.items():
            ms = statistics.median(r["ms_per_step"] for r in measured)
            precision = measured[0].get("precision", "float32")
            gflops = step_flop(size) / (ms / 1000) / 1e9
            reference = peak["bfloat16"] if "bfloat16" in precision else peak["float32"]
            results[variant] = {
                "precision": precision,
                "ms_per_step": ms,
                "ms_per_step_all": [r["ms_per_step"] for r in measured],
                "cpu_ms_per_step": statistics.median(r["cpu_ms_per_step"] for r in measured),
                "peak_rss_mib": max(r["peak_rss_mib"] for r in measured),
                "peak_rss_mib_all": [r["peak_rss_mib"] for r in measured],
                "gflops": gflops,
                "percent_of_peak": 100 * gflops / reference,
            }
        naive = results.get("naive")
        for variant, result in results.items():
            result["speedup_vs_naive"] = naive["ms_per_step"] / result["ms_per_step"] if naive else None
            speedup = f"{result['speedup_vs_naive']:.2f}x" if naive else "-"
            print(f"{size:>6} {variant:>11} {result['precision']:>14} {result['ms_per_step']:>9.1f} "
                  f"{result['cpu_ms_per_step']:>8.1f} {result['gflops']:>8.0f} "
                  f"{result['percent_of_peak']:>6.0f}% {result['peak_rss_mib']:>9.0f} {speedup:>9}",
                  flush=True)  # fmt: skip
        rows.append({"size": size, "flop_per_step": step_flop(size), **results})
    return rows


def fixed_cost_table(sizes: list[int], args: argparse.Namespace, common: list[str]) -> dict:
    """Table 1b: fixed cost per job (cold and warm) and of the CLI, this checkout against --before."""
    roots = {"after": None, **({"before": args.before} if args.before else {})}
    print("\nfixed cost per job, seconds (one fresh process each: imports, extractor, then two jobs of "
          "the same size, 5 steps each; a job's fixed cost is the time to its first step's end minus "
          "a steady step)")  # fmt: skip
    print(f"{'size':>6} {'engine':>7} {'precision':>14} {'start->1st step':>16} {'imports':>8} "
          f"{'extractor':>10} {'1st job':>8} {'2nd job':>8} {'step':>7}")  # fmt: skip
    table: dict = {"jobs": [], "cli": {}}
    for size in sizes:
        samples: dict[str, list[dict]] = {name: [] for name in roots}
        for _ in range(args.repeat):
            for name, root in roots.items():
                started = time.time()  # the child's perf_counter differs: wall clock across processes
                samples[name].append(run_child(["fixed-default", str(size), repr(started), *common], root))
        for name, measured in samples.items():
            row = {
                key: statistics.median(m[key] for m in measured) for key in measured[0] if key != "precision"
            }
            row.update(size=size, engine=name, precision=measured[0]["precision"])
            table["jobs"].append(row)
            print(f"{size:>6} {name:>7} {row['precision']:>14} {row['python_start_to_first_step']:>16.2f} "
                  f"{row['imports']:>8.2f} {row['extractor']:>10.2f} {row['first_job_fixed']:>8.3f} "
                  f"{row['second_job_fixed']:>8.3f} {row['steady_step']:>7.3f}", flush=True)  # fmt: skip
    print("\nCLI fixed cost, seconds (median wall time of the whole command)")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        from PIL import Image

        content, style = test_images(64)
        Image.fromarray((content * 255).astype("uint8")).save(folder / "c.png")
        Image.fromarray((style * 255).astype("uint8")).save(folder / "s.png")
        commands = {
            "--help": ["stylize", "--help"],
            "bad argument": ["stylize", "c.png", "s.png", "-o", "o.png", "--iterations", "0"],
            "64 px, 1 step": [
                "stylize",
                "c.png",
                "s.png",
                "-o",
                "o.png",
                "--size",
                "64",
                "--iterations",
                "1",
            ],
        }
        for what, argv in commands.items():
            for name, root in roots.items():
                seconds = [measure_cli(root or ROOT, argv, folder) for _ in range(max(1, args.repeat))]
                table["cli"][f"{what} ({name})"] = statistics.median(seconds)
                print(f"{what:>16} {name:>7} {statistics.median(seconds):>7.2f}", flush=True)
    return table


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
