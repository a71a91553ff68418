"""The short-term temporal loss of Ruder, Dosovitskiy and Brox ("Artistic style transfer for videos",
2016, eq. 3): a term of the objective on the image being optimised, not a constant.

    L_temporal(x) = temporal_weight / 3 * sum_i c_i (x_i - w_i)^2

over the values of frame t's image x (3 per pixel), with w the previous stylised frame warped onto
frame t by the optical flow and c the consistency mask (worker/engine/flow.py). stylize() adds it to
every step's loss (``Targets.temporal``), so its gradient 2 c (x - w) weight / 3 pulls the
consistent pixels toward the warped frame while the style and content terms act everywhere.

Summed over the pixels, where Ruder divides by their number D: this engine's total-variation term
is a sum over pixels too, and it is the term a frame's pixels settle against, so one
temporal_weight holds at every size (as a mean, the weight that worked at 48 px had to grow with
the pixels; docs/video.md).
(cysmith/neural-style-tf computes its version from a NumPy copy of the image, which has no gradient.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

# What the compiled steps get (Targets.temporal): the warped previous frame (1, H, W, 3) and the mask
# times the weight (1, H, W, 1), so a new frame or weight changes values, not the graph.
TemporalTensors = tuple[tf.Tensor, tf.Tensor]


@dataclass(frozen=True)
class TemporalTarget:
    """Frame t-1's stylised image brought onto frame t (float32 H x W x 3 in [0, 1]), the mask of
    where that holds (H x W in [0, 1]) and the loss's weight."""

    warped: np.ndarray
    mask: np.ndarray
    weight: float

    def at(self, height: int, width: int) -> TemporalTensors:
        """The target at a rung's size (bilinear; a coarse rung sees a blurred mask)."""
        warped = tf.constant(self.warped[None], tf.float32)
        mask = tf.constant(self.mask[None, ..., None] * self.weight, tf.float32)
        if tuple(self.warped.shape[:2]) != (height, width):
            warped = tf.image.resize(warped, (height, width), method="bilinear", antialias=True)
            mask = tf.image.resize(mask, (height, width), method="bilinear", antialias=True)
        return warped, mask


def temporal_loss(image: tf.Tensor, target: TemporalTensors) -> tf.Tensor:
    """The weighted, masked squared difference of ``image`` (1, H, W, 3) to the warped frame, summed
    over the pixels and averaged over the channels."""
    warped, weighted_mask = target
    return tf.reduce_sum(weighted_mask * tf.square(image - warped)) / 3.0


def attached(make_targets: Callable[[], Any], target: TemporalTarget | None, height: int, width: int) -> Any:
    """``make_targets`` (a rung's targets maker) with ``target`` at the rung's size added to what it
    makes (``Targets.temporal``); itself when there is no temporal target."""
    if target is None:
        return make_targets

    def with_temporal() -> Any:
        return make_targets()._replace(temporal=target.at(height, width))

    return with_temporal
