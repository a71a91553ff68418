"""The loss terms of Gatys et al., as small pure functions on tensors (shape (1, H, W, C))."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import tensorflow as tf


def gram_matrix(features: tf.Tensor, compute_dtype: tf.DType | None = None) -> tf.Tensor:
    """Channel correlations (batch, C, C), averaged over the H*W positions (as in the TF tutorial).

    ``compute_dtype`` bfloat16: the products in bfloat16 (accumulated in float32 by oneDNN and
    cuBLAS), the result rounded to bfloat16 and returned as float32; features that are bfloat16
    values already (a mixed_bfloat16 extractor's) lose nothing on the way in.
    """
    shape = tf.shape(features)
    positions = tf.cast(shape[1] * shape[2], tf.float32)
    if compute_dtype is not None and compute_dtype != features.dtype:
        narrow = tf.cast(features, compute_dtype)
        return tf.cast(tf.einsum("bijc,bijd->bcd", narrow, narrow), tf.float32) / positions
    return tf.einsum("bijc,bijd->bcd", features, features) / positions


def content_loss(features: Mapping[str, tf.Tensor], targets: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """Mean squared feature distance, averaged over the content layers (unweighted)."""
    distances = [tf.reduce_mean(tf.square(features[name] - target)) for name, target in targets.items()]
    return tf.add_n(distances) / len(distances)


def style_loss(
    grams: Mapping[str, tf.Tensor],
    targets: Mapping[str, tf.Tensor],
    layer_weights: Sequence[float] | tf.Tensor | None = None,
) -> tf.Tensor:
    """Sum over style layers of weight * mean squared Gram distance; equal weights (1 / layers) by default.

    ``layer_weights`` may be a float32 vector (compiled steps take it as an input, so other weights
    do not change the graph).
    """
    names = list(targets)
    weights = layer_weights if layer_weights is not None else [1.0 / len(names)] * len(names)
    distances = [
        weights[index] * tf.reduce_mean(tf.square(grams[name] - targets[name]))
        for index, name in enumerate(names)
    ]
    return tf.add_n(distances)


def total_variation_loss(image: tf.Tensor) -> tf.Tensor:
    """Sum of absolute differences between neighbouring pixels (tf.image.total_variation), over the batch."""
    return tf.reduce_sum(tf.image.total_variation(image))
