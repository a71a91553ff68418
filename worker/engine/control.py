"""Control over the picture: where each style goes, what colours the result has, what is matched.

Gatys, Ecker, Bethge, Hertzmann and Shechtman (2017), "Controlling Perceptual Factors in Neural
Style Transfer" (arXiv 1611.07865), name three controls; Atelier's scale control is style_scale,
this module adds the other two, and the style-loss variants of crowsonkb/style-transfer-pytorch:

- Space (masks): each style image may have a greyscale mask, white meaning "this style here". Its
  statistics are then matched inside that region only (guided Gram matrices, section 4 of the
  paper): the mask is resized to every style layer, and the image's Gram matrix (or mean and
  covariance) there is a mask-weighted average over the region. Where no mask is white, the
  content is kept: the image the network sees (and the output) is ``coverage * image + (1 -
  coverage) * content``, with ``coverage`` the masks' sum clipped to 1, so grey edges blend softly.
- Colour: ``colors="histogram"`` maps the style images' colours to the content's mean and
  covariance before the transfer (section 5, the linear "image analogies" transform);
  ``"luminance"`` (preserve_colors) is images.transfer_luminance, applied to the output.
- ``style_loss="mean_cov"`` matches each style layer's feature mean and covariance apart (the
  Gram matrix mixes the two: it is the covariance plus the mean's outer product). Several styles
  are blended by averaging their means and second moments, which are linear in the images, and
  only then taking the covariance. ``style_loss="w2"`` takes the same moments (losses.w2_distance).
- ``ema_decay``: an exponential moving average of Adam's iterates (bias-corrected) is the output.
- ``pooling="average"``: model.ScaledAveragePooling instead of VGG19's max pooling.

stylize() calls ``prepare`` once, ``style_moments`` (through the style target cache) and
``ControlPlan.attach`` per image size; the compiled loss composes the masked terms of losses.py
(``moment_sums`` with masks, ``composite``) from the Targets made here. The default options make
none of it run.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from spec.errors import OptionsError
from spec.options import StyleOptions
from worker.engine import images as imaging
from worker.engine.losses import NEEDS_MEANS, moments, style_target
from worker.engine.model import FeatureExtractor, build_network
from worker.engine.objective import Stats, Targets, blended_targets

COLOUR_EPSILON = 1e-4  # added to the colour covariances' eigenvalues: flat images stay finite


@dataclass(frozen=True)
class ControlPlan:
    """One run's masks and loss choice, at the content's (max_size) resolution."""

    loss: str  # the style loss (losses.STYLE_DISTANCES)
    blend: tuple[float, ...]  # normalised style_blend
    masks: np.ndarray | None  # (S, H, W) float32 in [0, 1], ones for a style without a mask; None: no masks
    coverage: np.ndarray | None  # (H, W) float32, where the styles apply at all; None: everywhere

    def attach(
        self,
        content_targets: dict[str, tf.Tensor],
        extractor: FeatureExtractor,
        content: np.ndarray,
        stats: Sequence[Stats],
        style_layers: Sequence[str],
    ) -> Targets:
        """This size's Targets: the styles' moments blended (one term), or one term per style image
        inside its mask's region.

        ``content`` (H x W x 3) is the float content at this run's size, ``stats`` each style image's
        ``style_moments`` at this run's style side.
        """
        loss = self.loss
        if self.masks is None:  # one blended term
            return blended_targets(content_targets, stats, self.blend, loss)
        height, width = content.shape[:2]
        sized = _resize_masks(self.masks, height, width)
        # A region as strong as a whole-image style (equal blend: each style at full weight), and
        # weighted by its area, so a pixel's pull towards its style is the same as without masks.
        areas = sized.mean(axis=(1, 2))
        weights = tf.constant(np.asarray(self.blend) * len(self.blend) * areas, tf.float32)
        features = extractor(tf.constant(content[None]))
        shapes = {name: tf.shape(features[name])[1:3] for name in style_layers}
        masks = {
            name: tf.image.resize(sized[..., None], shapes[name], method="area")[..., 0]
            for name in style_layers
        }
        keep = None
        if self.coverage is not None:
            coverage = _resize_masks(self.coverage[None], height, width)[0]
            keep = (tf.constant(content[None]), tf.constant(coverage[None, ..., None]))
        style = {}
        for name in style_layers:  # one term per style image
            mean = tf.stack([found[name][0] for found in stats]) if loss in NEEDS_MEANS else None
            style[name] = style_target(loss, mean, tf.stack([found[name][1] for found in stats]))
        return Targets(content_targets, style, weights, loss, masks, keep)

    def composite(self, image: np.ndarray, content: np.ndarray) -> np.ndarray:
        """The output seen by a person: the content where no style applies (float H x W x 3, full size)."""
        if self.coverage is None:
            return image
        coverage = _resize_masks(self.coverage[None], *image.shape[:2])[0][..., None]
        return coverage * image + (1.0 - coverage) * content


def prepare(
    options: StyleOptions,
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    masks: Sequence[np.ndarray | None] | None,
) -> ControlPlan | None:
    """The masks fitted to the (resized, uint8) content, as the run's controls; None when neither masks
    nor mean_cov are asked for (today's Gram loss runs unchanged). The run plan has checked the masks'
    number and shapes, and that not all are black."""
    given = masks is not None and any(mask is not None for mask in masks)
    if not given and options.style_loss == "gram":
        return None
    blend = options.normalized_blend(len(styles))
    if not given:
        return ControlPlan(options.style_loss, blend, None, None)
    height, width = content.shape[:2]
    sized = [
        np.ones((height, width), np.float32) if mask is None else fit_mask(mask, height, width)
        for mask in masks or ()
    ]
    stacked = np.stack(sized)
    coverage = np.minimum(stacked.sum(axis=0), 1.0)
    return ControlPlan(
        options.style_loss,
        blend,
        stacked,
        None if coverage.min() >= 1.0 - imaging.BLACK else coverage,
    )


def fit_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """``mask`` as float32 ``height`` x ``width`` (its shape is the run plan's to check)."""
    return _resize_masks(imaging.as_mask(mask)[None], height, width)[0]


def _resize_masks(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """(S, h, w) float masks resized (area-averaged down, bilinear up) to (S, height, width)."""
    if masks.shape[1:] == (height, width):
        return masks.astype(np.float32)
    resized = tf.image.resize(masks[..., None], (height, width), method="bilinear", antialias=True)
    return np.clip(resized.numpy()[..., 0], 0.0, 1.0).astype(np.float32)


def style_moments(
    extractor: FeatureExtractor, style: np.ndarray, layers: Sequence[str], dtype: tf.DType | None = None
) -> Stats:
    """One style image's (float H x W x 3, at the run's style side) moments per layer: one forward
    pass, what the style target cache keeps for masks and mean_cov (they do not depend on the masks).
    ``dtype``: the second moments' (objective.moment_dtype)."""
    features = extractor(tf.constant(style[None]))
    stats = {}
    for name in layers:
        mean, second = moments(features[name], dtype=dtype, means=True)
        stats[name] = (mean[0], second[0])
    return stats


def match_colors(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The style image (uint8 H x W x 3) with the content's colour mean and covariance.

    Gatys et al. 2017, section 5: x' = A (x - mu_style) + mu_content with A = Sigma_content^(1/2)
    Sigma_style^(-1/2) (symmetric square roots, the "image analogies" variant), in RGB.
    """
    source = imaging.to_float(style).reshape(-1, 3).astype(np.float64)
    target = imaging.to_float(content).reshape(-1, 3).astype(np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    transform = _sqrtm(np.cov(target, rowvar=False)) @ _sqrtm(np.cov(source, rowvar=False), inverse=True)
    matched = (source - source_mean) @ transform.T + target_mean
    return imaging.to_uint8(np.clip(matched, 0.0, 1.0).reshape(style.shape).astype(np.float32))


def _sqrtm(covariance: np.ndarray, inverse: bool = False) -> np.ndarray:
    values, vectors = np.linalg.eigh(covariance + COLOUR_EPSILON * np.eye(3))
    values = np.maximum(values, COLOUR_EPSILON)
    return (vectors * (values ** (-0.5 if inverse else 0.5))) @ vectors.T


def colour_styles(
    styles: Sequence[np.ndarray], content: np.ndarray, options: StyleOptions
) -> list[np.ndarray]:
    """The style images as the run uses them: colour-matched to the content for colors=histogram."""
    if options.colors != "histogram":
        return list(styles)
    return [match_colors(style, content) for style in styles]


class Average:
    """Bias-corrected exponential moving average of Adam's iterates (``decay`` 0: the iterate)."""

    def __init__(self, decay: float, image: tf.Variable) -> None:
        self.decay = decay
        self.image = image
        self.total = tf.Variable(tf.zeros_like(image), trainable=False) if decay else None
        self.weight = 0.0  # sum of the weights so far: the bias correction

    def update(self) -> None:
        if self.total is None:
            return
        self.weight = self.decay * self.weight + (1.0 - self.decay)
        self.total.assign(self.decay * self.total + (1.0 - self.decay) * self.image)

    def value(self) -> np.ndarray:
        """The averaged image (float32 H x W x 3), the iterate itself before the first update."""
        if self.total is None or self.weight == 0.0:
            return self.image.numpy()[0]
        return np.clip(self.total.numpy()[0] / self.weight, 0.0, 1.0)


# Derived extractors by base extractor and pooling; they go when the base does.
_POOLED: weakref.WeakKeyDictionary[FeatureExtractor, dict[str, FeatureExtractor]]
_POOLED = weakref.WeakKeyDictionary()


def with_pooling(extractor: FeatureExtractor, pooling: str) -> FeatureExtractor:
    """``extractor`` with ``pooling`` ("max" or "average"): itself, or a variant built once from its
    kernels (kept while the extractor lives; steps.steps_for gives it a step cache of its own)."""
    if pooling == extractor.pooling:
        return extractor
    if pooling not in ("max", "average"):
        raise OptionsError(f"pooling must be max or average, not {pooling!r}")
    variants = _POOLED.setdefault(extractor, {})
    if pooling not in variants:
        kernels = {
            layer.name: tuple(np.asarray(value, np.float32) for value in layer.get_weights())
            for layer in extractor.model.layers
            if isinstance(layer, keras.layers.Conv2D)
        }
        model = build_network(kernels, extractor.layers, extractor.precision, pooling)
        variants[pooling] = dataclasses.replace(extractor, model=model, pooling=pooling)
    return variants[pooling]
