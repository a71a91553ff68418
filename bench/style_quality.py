"""How well each style loss matches the style's feature distributions: a proxy of quality (issue 24).

    python bench/style_quality.py                                  # random weights (seeded), 128 px
    python bench/style_quality.py --weights imagenet --size 256    # ImageNet weights, where they exist
    python bench/style_quality.py --weights /models/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5

Each loss (gram, mean_cov, w2, sliced_w, and "none": no style term at all) paints the library's
astronaut in The Starry Night from the same start, the same steps and the same weights. The proxy
then compares, per style layer, the output's feature distribution with the style image's: the 1-D
Wasserstein-1 distance between each channel's values (their quantiles), averaged over channels, over
the style's mean channel spread. It is reported against the content photo's own distance (1.0: no
closer to the style than the photo was), beside each run's losses.

Kept honest: with random weights the features are random projections of colour and local texture,
not what a person sees, and sliced_w optimises projected distributions, so a distribution measure
leans its way by construction; the figure says what each loss matches, not which
picture is more beautiful. With ImageNet weights (--weights) the same command compares the real
thing. Prints a table and writes JSON under bench/results/.
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
sys.path[:0] = [str(ROOT)]

LOSSES = ("gram", "mean_cov", "w2", "sliced_w")
CONTENT = ROOT / "library" / "photos" / "astronaut.png"
STYLE = ROOT / "library" / "styles" / "van-gogh-starry-night.jpg"
QUANTILES = 256  # points each channel's distribution is compared at


def distribution_distance(features, style_features) -> float:  # noqa: ANN001 (NumPy arrays)
    """Mean over channels of W1(output channel, style channel), over the style layer's mean spread."""
    import numpy as np

    levels = np.linspace(0.0, 1.0, QUANTILES)
    ours = np.quantile(features.reshape(-1, features.shape[-1]), levels, axis=0)
    theirs = np.quantile(style_features.reshape(-1, style_features.shape[-1]), levels, axis=0)
    # One scale per layer (the style's mean channel spread): a channel the random network leaves
    # nearly constant would otherwise weigh as much as a textured one.
    spread = float(style_features.reshape(-1, style_features.shape[-1]).std(axis=0).mean()) + 1e-12
    return float(np.abs(ours - theirs).mean() / spread)


def layer_distances(extractor, image, style, style_layers) -> dict[str, float]:  # noqa: ANN001
    """Each style layer's distribution distance of ``image`` (uint8) to ``style`` (uint8)."""
    import tensorflow as tf

    from worker.engine.images import to_float

    def features(picture):  # noqa: ANN001, ANN202
        return extractor(tf.constant(to_float(picture)[None]))

    ours, theirs = features(image), features(style)
    return {
        name: distribution_distance(
            ours[name].numpy().astype("float32"), theirs[name].numpy().astype("float32")
        )
        for name in style_layers
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", default="random", help="random (seeded), imagenet or a weights file")
    parser.add_argument("--model-dir", default=str(ROOT / "data" / "models"))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--losses", default=",".join(LOSSES))
    parser.add_argument(
        "--style-weight", type=float, default=None, help="for every loss (default: the option's default)"
    )
    args = parser.parse_args()

    from spec.options import StyleOptions
    from worker.engine import RunImages, load_extractor, stylize
    from worker.engine.images import load_image, resize, resize_to_longest

    extractor = load_extractor(weights=args.weights, model_dir=args.model_dir, precision="float32")
    content, style = load_image(CONTENT), load_image(STYLE)
    images = RunImages(content, [style])
    rows = []
    weight = {} if args.style_weight is None else {"style_weight": args.style_weight}
    # "none": the same run without a style term (style_weight 0), so the content and TV terms' own
    # drift is the reference the losses' rows are read against.
    for loss in ["none", *args.losses.split(",")]:
        options = StyleOptions(
            max_size=args.size,
            iterations=args.iterations,
            style_loss="gram" if loss == "none" else loss,
            seed=0,
            **({"style_weight": 0.0} if loss == "none" else weight),
        )
        plan = images.plan(options).check()
        started = time.perf_counter()
        result = stylize(plan, images, extractor)
        height, width = result.image.shape[:2]
        scaled_style = resize_to_longest(style, plan.rungs[-1].style_side)  # as the last rung's targets
        baseline = layer_distances(
            extractor, resize(content, height, width), scaled_style, options.style_layers
        )
        reached = layer_distances(extractor, result.image, scaled_style, options.style_layers)
        rows.append(
            {
                "loss": loss,
                "seconds": round(time.perf_counter() - started, 1),
                "style_loss_initial": result.loss_initial["style"],
                "style_loss_final": result.loss_final["style"],
                "distance": {name: reached[name] / baseline[name] for name in reached},
            }
        )
    _print(rows, StyleOptions().style_layers, args)
    out = ROOT / "bench" / "results" / f"style-quality-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"weights": args.weights, "size": args.size, "rows": rows}, indent=2))
    print(f"\nwrote {out.relative_to(ROOT)}")


def _print(rows: list[dict], layers: tuple[str, ...], args: argparse.Namespace) -> None:
    weight = "default" if args.style_weight is None else f"{args.style_weight:g}"
    print(
        f"weights {args.weights}, {args.size} px, {args.iterations} Adam steps, float32, style weight", weight
    )
    print("distribution distance to the style per layer, over the content photo's (1.0: no closer)\n")
    header = [
        "loss",
        "style loss start -> end",
        *[name.replace("_conv1", "") for name in layers],
        "mean",
        "s",
    ]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for row in rows:
        distances = [row["distance"][name] for name in layers]
        losses = f"{row['style_loss_initial']:.3g} -> {row['style_loss_final']:.3g}"
        cells = [
            row["loss"],
            losses,
            *(f"{d:.2f}" for d in distances),
            f"{sum(distances) / len(distances):.2f}",
        ]
        print(" | ".join([*cells, f"{row['seconds']:.0f}"]))


if __name__ == "__main__":
    main()
