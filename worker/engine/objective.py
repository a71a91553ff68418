"""The objective: the loss terms of losses.py composed over a whole image, with its targets and weights.

``loss_parts`` is the untiled step's loss; tiling.TiledObjective composes the same terms from sums
over tiles. ``Targets`` is what both take: the content's features, each style layer's target
statistics, and (with masks) the regions and the content kept where no style applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import tensorflow as tf

from worker.engine.losses import (
    NEEDS_MEANS,
    StyleTarget,
    blended,
    composite,
    content_loss,
    moments,
    second_moment_dtype,
    sliced_loss,
    squared_distance,
    style_loss,
    style_target,
    total_variation_loss,
)
from worker.engine.model import FeatureExtractor
from worker.engine.temporal import TemporalTensors, temporal_loss

LOSS_PARTS = ("total", "content", "style", "tv")  # "total" is the sum of the others
# One style image's statistics: style layer -> (mean (C,) or None where the loss needs none, second
# moment (C, C)), per position; what the style target cache keeps.
Stats = dict[str, tuple[tf.Tensor | None, tf.Tensor]]


class Targets(NamedTuple):
    """A rung's targets (tensors; the compiled steps take them as inputs). S is the number of style
    terms: one blended term without masks, one per style image with them."""

    content: dict[str, tf.Tensor]  # content layer -> features of the content image (1, h, w, C)
    style: dict[str, StyleTarget]  # style layer -> the style's statistics
    weights: tf.Tensor  # (S,) weight of each style term
    loss: str = "gram"  # the style loss (losses.STYLE_DISTANCES)
    masks: dict[str, tf.Tensor] | None = None  # style layer -> (S, h, w) region weights; None: everywhere
    keep: tuple[tf.Tensor, tf.Tensor] | None = None  # (content (1, H, W, 3), coverage (1, H, W, 1))
    # where some pixels are left unstyled (losses.composite); None: none is
    # sliced_w: style layer -> each style image's features (n_s, C), blended by ``weights``; ``style``
    # is then empty; ``draw`` the step's seed of its random directions (shape [2], int64)
    samples: dict[str, tuple[tf.Tensor, ...]] | None = None
    draw: tf.Tensor | None = None
    temporal: TemporalTensors | None = None  # a video frame's temporal loss target (temporal.py)


class LossWeights(NamedTuple):
    """Floats, or (as the compiled steps get them) float32 tensors: a scalar each, a vector for
    ``style_layers``, so changing a weight does not change the graph."""

    content: Any
    style: Any
    tv: Any
    style_layers: Any  # one per style layer, summing to 1

    def as_tensors(self) -> LossWeights:
        return LossWeights(*(tf.constant(value, tf.float32) for value in self))


def blended_targets(
    content: dict[str, tf.Tensor], stats: Sequence[Stats], blend: Sequence[float], loss: str
) -> Targets:
    """Targets of one style term: the styles' ``stats`` blended by ``blend`` (means and second
    moments are linear in the features, so several styles blend by their weighted mean; mean_cov
    and w2 take the covariance of the blend, as crowsonkb/style-transfer-pytorch does)."""
    style = {}
    for name in stats[0]:
        second = blended(blend, [found[name][1] for found in stats])[None]
        mean = blended(blend, [found[name][0] for found in stats])[None] if loss in NEEDS_MEANS else None
        style[name] = style_target(loss, mean, second)
    return Targets(content, style, tf.ones((1,), tf.float32), loss)


def sliced_targets(
    content: dict[str, tf.Tensor], samples: Sequence[dict[str, tf.Tensor]], blend: Sequence[float], seed: int
) -> Targets:
    """Targets of style_loss=sliced_w: each style image's features per layer (``samples``), blended
    by ``blend`` when compared; the directions of the first draw (``with_draw`` sets a step's)."""
    layers = {name: tuple(found[name] for found in samples) for name in samples[0]}
    weights = tf.constant(blend, tf.float32)
    return with_draw(Targets(content, {}, weights, "sliced_w", samples=layers), seed, 0)


def with_draw(targets: Targets, seed: int, step: int) -> Targets:
    """``targets`` with step ``step``'s random directions (sliced_w; other losses have none)."""
    if targets.samples is None:
        return targets
    return targets._replace(draw=tf.constant([seed, step], tf.int64))


def content_sizes(targets: Targets) -> dict[str, tf.Tensor]:
    """Content layer -> the number of values (positions x channels) its loss averages over."""
    return {name: tf.cast(tf.size(target), tf.float32) for name, target in targets.content.items()}


def moment_dtype(extractor: FeatureExtractor, loss: str) -> tf.DType | None:
    """losses.second_moment_dtype for this extractor's precision."""
    return second_moment_dtype(extractor.precision, loss)


def weighted_parts(
    weights: LossWeights, content: tf.Tensor, style: tf.Tensor, image: tf.Tensor
) -> dict[str, tf.Tensor]:
    """The loss parts from the unweighted content and style terms, the TV term of ``image``."""
    parts = {
        "content": weights.content * content,
        "style": weights.style * style,
        "tv": weights.tv * total_variation_loss(image),
    }
    parts["total"] = parts["content"] + parts["style"] + parts["tv"]
    return parts


def loss_parts(
    extractor: FeatureExtractor, weights: LossWeights, image: tf.Tensor, targets: Targets
) -> dict[str, tf.Tensor]:
    """Weighted loss parts {"total", "content", "style", "tv"} of ``image`` (1, H, W, 3) in [0, 1]."""
    image = composite(image, targets.keep)  # the content where masks say no style
    features = extractor(image)
    if targets.samples is not None:
        assert targets.draw is not None
        styled = sliced_loss(features, targets.samples, targets.weights, weights.style_layers, targets.draw)
    else:
        dtype, means = moment_dtype(extractor, targets.loss), targets.loss in NEEDS_MEANS
        masks = targets.masks
        found = {
            name: moments(features[name], None if masks is None else masks[name], dtype, means)
            for name in targets.style
        }
        styled = style_loss(targets.loss, found, targets.style, weights.style_layers, targets.weights)
    squared = {name: squared_distance(features[name], target) for name, target in targets.content.items()}
    parts = weighted_parts(weights, content_loss(squared, content_sizes(targets)), styled, image)
    if targets.temporal is not None:  # a video frame's (never tiled: the plan says so)
        parts["temporal"] = temporal_loss(image, targets.temporal)
        parts["total"] += parts["temporal"]
    return parts


def loss_and_gradient(
    extractor: FeatureExtractor, weights: LossWeights, image: tf.Tensor, targets: Targets
) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
    with tf.GradientTape() as tape:
        tape.watch(image)
        parts = loss_parts(extractor, weights, image, targets)
    return parts, tape.gradient(parts["total"], image)
