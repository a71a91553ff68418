"""The loss terms, each written once: content, style (gram, mean_cov or w2; whole or masked), TV.

Every term is a function of sums over an image's positions, so the untiled step (objective.py) and
the tiled passes (tiling.py) compose the same pieces: the untiled step takes the sums over the
whole feature map, the tiled passes add them up tile by tile and differentiate the same term with
respect to those sums. Features have shape (1, h, w, C); S is the number of style terms (one per
style image with masks, one blended term without).

- content: ``squared_distance`` sums (feature - target)^2 over a layer; ``content_loss`` is their
  mean over positions and channels, averaged over the content layers.
- style: ``moment_sums`` gives a layer's position count, feature sum and second-moment sum
  (mask-weighted when there are masks), ``normalised`` (or ``moments``, for a whole map) their
  values per position; ``style_loss`` weighs each term's ``STYLE_DISTANCES[loss]`` between those
  and its ``StyleTarget``, summed over layers.
- tv: ``total_variation_loss`` on the whole image (cheap; never tiled).
- masks: ``composite`` keeps the content where no mask is white, before the features are taken.

A new term is a function of the features' sums (or of the image) here, and one line where
objective.loss_parts and tiling.TiledObjective add the terms up (LOSS_PARTS).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import tensorflow as tf

MASK_AREA_EPSILON = 1e-6  # the smallest region a masked term divides by: an empty region stays finite


class Moments(NamedTuple):
    """Sums over a layer's positions (mask-weighted with masks): additive, so tiles add up."""

    count: tf.Tensor  # (S,) the positions (the region's area with masks)
    first: tf.Tensor | None  # (S, C) sum of the features; None when the loss needs no means
    second: tf.Tensor  # (S, C, C) sum of the features' outer products


class StyleTarget(NamedTuple):
    """One style layer's target statistics, normalised per position (``style_target`` makes them)."""

    second: tf.Tensor  # (S, C, C) second moments (gram) or covariances (mean_cov, w2)
    mean: tf.Tensor | None  # (S, C) means (mean_cov, w2); None for gram
    root: tf.Tensor | None = None  # (S, C, C) float64 square root of the covariance (w2)


def moment_sums(
    features: tf.Tensor,
    masks: tf.Tensor | None = None,
    dtype: tf.DType | None = None,
    means: bool = False,
) -> Moments:
    """The sums of one layer's features (1, h, w, C), over the whole map or weighted by each of
    ``masks`` (S, h, w). ``dtype`` bfloat16: the second moments' products in bfloat16 (accumulated in
    float32 by oneDNN and cuBLAS), rounded to bfloat16 and returned as float32 (see
    ``second_moment_dtype``). ``means``: the feature sums too."""
    values = features[0]  # (h, w, C)
    narrow = values if dtype is None or dtype == values.dtype else tf.cast(values, dtype)
    if masks is None:
        shape = tf.shape(values)
        count = tf.cast(shape[0] * shape[1], tf.float32)[None]
        first = tf.reduce_sum(values, axis=(0, 1))[None] if means else None
        second = tf.cast(tf.einsum("hwc,hwd->cd", narrow, narrow), tf.float32)[None]
    else:
        count = tf.reduce_sum(masks, axis=(1, 2))
        weighted = masks[..., None] * values[None]  # (S, h, w, C)
        narrow_weighted = weighted if narrow is values else tf.cast(weighted, dtype)
        second = tf.cast(tf.einsum("shwc,hwd->scd", narrow_weighted, narrow), tf.float32)
        first = tf.reduce_sum(weighted, axis=(1, 2)) if means else None
    return Moments(count=count, first=first, second=second)


def add_moments(total: Moments | None, more: Moments) -> Moments:
    """Two sets of sums added (a tile's to the tiles' so far)."""
    if total is None:
        return more
    first = None if more.first is None else total.first + more.first
    return Moments(total.count + more.count, first, total.second + more.second)


def normalised(sums: Moments) -> Normalised:
    """(mean (S, C) or None, second moment (S, C, C)) per position of the sums' region."""
    count = tf.maximum(sums.count, MASK_AREA_EPSILON)
    mean = None if sums.first is None else sums.first / count[:, None]
    return mean, sums.second / count[:, None, None]


def blended(weights: Sequence[float], values: Sequence[tf.Tensor]) -> tf.Tensor:
    """sum_s weights[s] * values[s]: several styles' statistics as one (they are linear in the pixels'
    features, so means and second moments blend by a weighted mean)."""
    total = weights[0] * values[0]
    for weight, value in zip(weights[1:], values[1:], strict=True):
        total = total + weight * value
    return total


Normalised = tuple[tf.Tensor | None, tf.Tensor]  # (mean (S, C) or None, second moment (S, C, C))


def moments(
    features: tf.Tensor, masks: tf.Tensor | None = None, dtype: tf.DType | None = None, means: bool = False
) -> Normalised:
    """``normalised(moment_sums(...))``: a whole image's (or region's) moments per position."""
    if means and masks is None:
        # reduce_mean, not the sum over the count: the same value, but its gradient rounds as it
        # did before the terms were shared, so a seed gives the same picture (compiled, the two differ
        # in the last bit). Taken first for the same reason: the order the gradients are added in.
        mean = tf.reduce_mean(features[0], axis=(0, 1))[None]
        return mean, normalised(moment_sums(features, None, dtype))[1]
    return normalised(moment_sums(features, masks, dtype, means))


def gram_matrix(features: tf.Tensor, dtype: tf.DType | None = None) -> tf.Tensor:
    """Channel correlations (1, C, C), averaged over the h*w positions (as in the TF tutorial)."""
    return normalised(moment_sums(features, dtype=dtype))[1]


def outer(means: tf.Tensor) -> tf.Tensor:
    """(S, C) -> (S, C, C) outer products of each row with itself."""
    return means[:, :, None] * means[:, None, :]


def gram_distance(mean: tf.Tensor | None, second: tf.Tensor, target: StyleTarget) -> tf.Tensor:
    """(S,) mean squared difference of second moments (Gatys' Gram loss)."""
    return tf.reduce_mean(tf.square(second - target.second), axis=(1, 2))


def mean_cov_distance(mean: tf.Tensor | None, second: tf.Tensor, target: StyleTarget) -> tf.Tensor:
    """(S,) mean squared difference of means plus that of covariances, matched apart."""
    assert mean is not None and target.mean is not None
    return tf.reduce_mean(tf.square(mean - target.mean), axis=1) + tf.reduce_mean(
        tf.square(second - outer(mean) - target.second), axis=(1, 2)
    )


# w2: the covariances' ridge, relative to the target's mean variance (crowsonkb adds 1e-4 x I on
# features of unit scale): it keeps the square roots' arguments away from singular, where float32
# rounding of a covariance would be amplified (d sqrt(x) / dx is unbounded at 0).
W2_RIDGE = 1e-3


def w2_distance(mean: tf.Tensor | None, second: tf.Tensor, target: StyleTarget) -> tf.Tensor:
    """(S,) the squared Wasserstein-2 distance between the Gaussians of the image's features and the
    target's, per channel: (|mu - mu_t|^2 + tr(cov + cov_t - 2 (cov_t^1/2 cov cov_t^1/2)^1/2)) / C,
    after crowsonkb/style-transfer-pytorch (its StyleLossW2; the square root here by an
    eigendecomposition in float64 with clamped eigenvalues, ``coupling``)."""
    assert mean is not None and target.mean is not None and target.root is not None
    channels = tf.cast(tf.shape(mean)[-1], tf.float32)
    # The target's ridge: its covariance's trace is (1 + W2_RIDGE) x the unridged one's.
    covariance = second - outer(mean) + ridge(target.second, W2_RIDGE / (1.0 + W2_RIDGE))
    coupled = tf.cast(coupling(tf.cast(covariance, tf.float64), target.root), tf.float32)
    traces = tf.linalg.trace(covariance) + tf.linalg.trace(target.second) - 2.0 * coupled
    return tf.reduce_mean(tf.square(mean - target.mean), axis=1) + traces / channels


def ridge(covariance: tf.Tensor, factor: float | None = None) -> tf.Tensor:
    """``factor`` (W2_RIDGE) x the mean variance x I, per term: (S, C, C)."""
    channels = tf.shape(covariance)[-1]
    scale = (
        (W2_RIDGE if factor is None else factor)
        * tf.linalg.trace(covariance)
        / tf.cast(channels, covariance.dtype)
    )
    return scale[:, None, None] * tf.eye(channels, dtype=covariance.dtype)[None]


def coupling(covariance: tf.Tensor, root: tf.Tensor) -> tf.Tensor:
    """(S,) tr((R C R)^1/2) of float64 (S, C, C) covariances C and symmetric roots R: the sum of
    the square roots of the eigenvalues of R C R (symmetrised), clamped at 0. Its gradient with
    respect to C, R V diag(1 / (2 sqrt(lambda))) V^T R, takes the eigenvalues at least EIGEN_FLOOR x
    the largest, so it stays finite where R C R is singular; written out as W diag W^T with W = R V,
    it takes 2 of the C x C float64 products where differentiating R C R and the eigenvalues' own
    gradient apart takes 3 (for 512 channels, ~12 ms each on a 2-vCPU EPYC)."""

    @tf.custom_gradient
    def trace_sqrt(matrices: tf.Tensor) -> tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]:
        inner = root @ matrices @ root
        values, vectors = tf.linalg.eigh(0.5 * (inner + tf.linalg.matrix_transpose(inner)))
        result = tf.reduce_sum(tf.sqrt(tf.maximum(values, 0.0)), axis=-1)

        def gradient(upstream: tf.Tensor) -> tf.Tensor:
            floor = EIGEN_FLOOR * tf.reduce_max(tf.abs(values), axis=-1, keepdims=True)
            scale = upstream[:, None] * 0.5 / tf.sqrt(tf.maximum(values, floor))
            spread = root @ vectors
            return (spread * scale[:, None, :]) @ tf.linalg.matrix_transpose(spread)

        return result, gradient

    return trace_sqrt(covariance)


# float64: coupling's gradient treats smaller eigenvalues than this x the largest as this. float64,
# not float32: float32 eigenvalues lose the small ones the gradient 1 / sqrt(lambda) weighs most
# (3-7% off a float64 reference's gradient at the start, as large as it near convergence).
EIGEN_FLOOR = 1e-12


def matrix_sqrt(matrices: tf.Tensor) -> tf.Tensor:
    """The symmetric square roots (float64) of symmetric positive semi-definite (S, C, C) matrices,
    by an eigendecomposition with the eigenvalues clamped at 0 (targets only: not differentiated)."""
    values, vectors = tf.linalg.eigh(tf.cast(matrices, tf.float64))
    roots = tf.sqrt(tf.maximum(values, 0.0))
    return (vectors * roots[:, None, :]) @ tf.linalg.matrix_transpose(vectors)


def style_target(loss: str, mean: tf.Tensor | None, second: tf.Tensor) -> StyleTarget:
    """A layer's target for ``loss`` from the style's (blended) mean and second raw moment: the
    second moment (gram), the covariance (mean_cov), the ridged covariance and its root (w2)."""
    if loss not in NEEDS_MEANS:
        return StyleTarget(second, None)
    assert mean is not None
    covariance = second - outer(mean)
    if loss != "w2":
        return StyleTarget(covariance, mean)
    covariance = covariance + ridge(covariance)
    return StyleTarget(covariance, mean, matrix_sqrt(covariance))


def random_directions(draw: tf.Tensor, channels: int, count: int) -> tf.Tensor:
    """(C, count) unit vectors, uniform on the sphere, drawn from ``draw`` (a shape-[2] int seed:
    the run's seed and the step, so a run reproduces and each step has fresh ones)."""
    normal = tf.random.stateless_normal((channels, count), seed=draw, dtype=tf.float32)
    return normal / tf.norm(normal, axis=0, keepdims=True)


def resampled(sorted_values: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
    """(K, n) values sorted along the last axis -> (K, count): their quantiles at count's midpoints,
    by linear interpolation (a style and an image of other pixel counts compare quantile by quantile)."""
    size = tf.cast(tf.shape(sorted_values)[-1], tf.float32)
    # Quantile i of count sits at (i + 0.5) / count; in the n values, at that times n, minus 0.5
    # (equal counts: exactly the values themselves).
    positions = (tf.range(count, dtype=tf.float32) + 0.5) * size / tf.cast(count, tf.float32) - 0.5
    positions = tf.clip_by_value(positions, 0.0, size - 1.0)
    below = tf.cast(tf.floor(positions), tf.int32)
    above = tf.minimum(below + 1, tf.cast(size, tf.int32) - 1)
    fraction = positions - tf.cast(below, tf.float32)
    low, high = tf.gather(sorted_values, below, axis=-1), tf.gather(sorted_values, above, axis=-1)
    return low * (1.0 - fraction) + high * fraction


def projections(values: tf.Tensor, directions: tf.Tensor) -> tf.Tensor:
    """(n, C) values projected on (C, K) directions: (K, n), each projection a row (sorted along
    the last axis, nothing is transposed)."""
    return tf.matmul(directions, values, transpose_a=True, transpose_b=True)


def sorted_projections(values: tf.Tensor, directions: tf.Tensor) -> tf.Tensor:
    """(n, C) values projected on (C, K) directions, each projection sorted: (K, n). The order is
    found once (argsort, not differentiated) and the gradient flows through a gather, which on a CPU
    is ~30% cheaper than tf.sort's own gradient (docs/performance.md, section 8); along the last
    axis, as the sort runs, so nothing is transposed."""
    projected = projections(values, directions)
    order = tf.stop_gradient(tf.argsort(projected, axis=-1))
    return tf.gather(projected, order, batch_dims=1)


def sliced_distance(
    features: tf.Tensor, samples: Sequence[tf.Tensor], blend: tf.Tensor, directions: tf.Tensor
) -> tf.Tensor:
    """Heitz et al. (2021)'s sliced Wasserstein loss of one layer: the features (1, h, w, C) and each
    style's (n_s, C) projected on ``directions`` (C, K), sorted, the styles' quantiles resampled to
    the image's pixel count and blended (``blend``, (S,): the 1-D Wasserstein barycentre), the mean
    squared difference of the sorted projections."""
    values = tf.reshape(features, (-1, tf.shape(features)[-1]))
    image = sorted_projections(values, directions)
    count = tf.shape(image)[-1]
    quantiles = [resampled(tf.sort(projections(style, directions), axis=-1), count) for style in samples]
    target = blended(tf.unstack(blend), quantiles)
    return tf.reduce_mean(tf.square(image - tf.stop_gradient(target)))


def sliced_loss(
    features: Mapping[str, tf.Tensor],
    samples: Mapping[str, Sequence[tf.Tensor]],
    blend: tf.Tensor,
    layer_weights: Sequence[float] | tf.Tensor,
    draw: tf.Tensor,
) -> tf.Tensor:
    """Sum over style layers of layer weight * ``sliced_distance``, with ``sliced_directions(C)``
    directions per layer drawn from ``draw`` (folded with the layer's index)."""
    terms = []
    for index, (name, styles) in enumerate(samples.items()):
        channels = features[name].shape[-1]
        directions = random_directions(
            tf.random.experimental.stateless_fold_in(draw, index), channels, sliced_directions(channels)
        )
        terms.append(layer_weights[index] * sliced_distance(features[name], styles, blend, directions))
    return tf.add_n(terms)


def sliced_directions(channels: int) -> int:
    """The number of random directions per layer of ``channels`` channels: SLICED_DIRECTIONS, at most
    the channels (Heitz et al. use as many as channels; fewer, fresh each step, are the same
    estimator with more variance per step, and cost a sort each)."""
    return min(SLICED_DIRECTIONS, channels) if SLICED_DIRECTIONS else channels


# Directions per layer (0: as many as its channels, Heitz et al.'s choice). 16: the step within
# 1.5x of gram's with the quality proxy unchanged (docs/performance.md, section 8).
SLICED_DIRECTIONS = 16


def style_sample(values: tf.Tensor, limit: int | None = None) -> tf.Tensor:
    """A style layer's features (n, C) as sliced_w's target: at most ``limit`` (SLICED_STYLE_PIXELS)
    of its rows, a fixed random subset (the same every run and step, so the style target cache keeps
    it; 0: all). Its sorted projections are then the style's quantiles estimated from that many
    pixels, resampled to the image's count like any other count (``resampled``)."""
    limit = SLICED_STYLE_PIXELS if limit is None else limit
    count = values.shape[0]
    if not limit or count <= limit:
        return values
    keys = tf.random.stateless_uniform((count,), seed=(0, 0))  # fixed: not the run's seed
    return tf.gather(values, tf.sort(tf.math.top_k(keys, limit).indices))


# At most this many of the style's pixels per layer for sliced_w (0: all): its sort each step then
# costs little beside the image's; 4096 is block2_conv1's count at 128 px.
SLICED_STYLE_PIXELS = 4096


Distance = Callable[[Any, tf.Tensor, StyleTarget], tf.Tensor]
# style_loss option -> the distance between an image's normalised moments and its target's.
STYLE_DISTANCES: dict[str, Distance] = {
    "gram": gram_distance,
    "mean_cov": mean_cov_distance,
    "w2": w2_distance,
}
NEEDS_MEANS = frozenset({"mean_cov", "w2"})  # the losses whose moments include the feature sums


def style_loss(
    loss: str,
    found: Mapping[str, Normalised],
    targets: Mapping[str, StyleTarget],
    layer_weights: Sequence[float] | tf.Tensor,
    term_weights: tf.Tensor,
) -> tf.Tensor:
    """Sum over style layers of layer weight * the style terms' (``term_weights``, (S,)) weighted
    ``STYLE_DISTANCES[loss]`` between the image's moments (``found``, per position) and the targets.
    ``layer_weights`` may be a float32 vector (compiled steps take it as an input, so other weights
    do not change the graph)."""
    distance = STYLE_DISTANCES[loss]
    terms = []
    for index, (name, target) in enumerate(targets.items()):
        mean, second = found[name]
        terms.append(layer_weights[index] * tf.reduce_sum(term_weights * distance(mean, second, target)))
    return tf.add_n(terms)


def squared_distance(features: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """The sum of (features - target)^2 over a layer's positions and channels (additive over tiles)."""
    return tf.reduce_sum(tf.square(features - target))


def content_loss(squared: Mapping[str, tf.Tensor], sizes: Mapping[str, Any]) -> tf.Tensor:
    """Mean squared feature distance (``squared_distance`` over ``sizes`` values), averaged over the
    content layers (unweighted)."""
    distances = [squared[name] / sizes[name] for name in squared]
    return tf.add_n(distances) / len(distances)


def total_variation_loss(image: tf.Tensor) -> tf.Tensor:
    """Sum of absolute differences between neighbouring pixels (tf.image.total_variation), over the batch."""
    return tf.reduce_sum(tf.image.total_variation(image))


def composite(image: tf.Tensor, keep: tuple[tf.Tensor, tf.Tensor] | None) -> tf.Tensor:
    """The image the network sees under masks: ``coverage * image + (1 - coverage) * content``, the
    content where no style applies; ``keep`` None: the image itself."""
    if keep is None:
        return image
    content, coverage = keep
    return coverage * image + (1.0 - coverage) * content


def second_moment_dtype(precision: str, loss: str) -> tf.DType | None:
    """The dtype of the second moments' products, one policy for the image and its targets, tiled
    or whole (None: float32).

    bfloat16 under mixed_bfloat16 for the Gram loss: 13-20% of a bfloat16 step in float32, with the
    loss curve as close to float32's (docs/performance.md). float32 where a covariance is taken
    (mean_cov, w2): E[xx^T] - mu mu^T cancels the leading digits that bfloat16's 8 bits keep.
    """
    if BFLOAT16_GRAMS and precision == "mixed_bfloat16" and loss not in NEEDS_MEANS:
        return tf.bfloat16
    return None


BFLOAT16_GRAMS = True  # False: float32 second moments under every precision (bench/engine.py's variant)
