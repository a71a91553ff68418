"""Exact tiled evaluation of the Gatys loss and its gradient, for images larger than a memory budget.

Memory, not arithmetic, limits the size of an untiled step: the backward pass keeps every layer's
activations, about 1.2 KB per input pixel in float32. The loss allows an exact tiled step:

- A feature of the deepest layer used (block5_conv2) depends on a window of 188 x 188 input pixels
  (VGG19's receptive field), and VGG19's poolings put every layer on a grid of 16 pixels. A tile
  that starts on that grid and carries a halo covering the receptive field computes its interior's
  features exactly as the whole image does. At the image's borders a tile takes no halo: there the
  convolutions' zero padding is the same as the whole image's.
- Gram matrices are sums over positions, the content loss a sum over positions, so both add up tile
  by tile (pass 1, forward only).
- Pass 2 runs each tile forward and backward once more, backpropagating the global dL/dGram (known
  after pass 1) and the content loss's gradient through that tile's interior features only; the
  tiles' input gradients are summed. Total variation is computed on the whole image (it is cheap).

The result equals the untiled loss and gradient up to float32 rounding (tests/engine/test_tiling.py),
with memory bounded by the tile size instead of the image size. The price is the halos' pixels and
pass 1's second forward pass (docs/performance.md, "Large prints").
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import keras
import numpy as np
import tensorflow as tf

from spec.errors import EngineError, OptionsError
from worker.engine.losses import (
    NEEDS_MEANS,
    Moments,
    add_moments,
    content_loss,
    moment_sums,
    normalised,
    squared_distance,
    style_loss,
    total_variation_loss,
)
from worker.engine.model import FeatureExtractor
from worker.engine.objective import (
    LossWeights,
    Stats,
    Targets,
    blended_targets,
    content_sizes,
    moment_dtype,
    weighted_parts,
)

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
# Forward-only passes (pass 1, the targets) keep about 1/5 of the memory per pixel of a forward and
# backward pass (measured at 1024 px, float32: 0.55 against 3 KB per pixel), so their tiles may have
# this many times the pixels: fewer tiles, less halo to compute twice.
FORWARD_TILE_FACTOR = 4
Box = tuple[int, int, int, int]  # top, bottom, left, right in image pixels (bottom/right exclusive)


@dataclass(frozen=True)
class Geometry:
    """Where a network's features sit on the input: what a tile needs to reproduce them exactly."""

    grid: int  # stride of the deepest feature map: tiles start and end on multiples of it
    halo: int  # context (pixels) each tile needs on each side: the receptive half-width, rounded up to grid
    strides: Mapping[str, int]  # feature map -> its stride in input pixels


@dataclass(frozen=True)
class Tile:
    crop: Box  # the pixels fed to VGG19
    interior: Box  # the pixels whose features this tile contributes; the interiors partition the image


def geometry(extractor: FeatureExtractor) -> Geometry:
    """The extractor's grid and halo, read from its layers (3x3 'same' convolutions, 2x2 poolings).

    A feature at position r of a map with stride s depends on input pixels [s*r - left, s*r + right];
    each convolution widens that window by its kernel radius times s, each pooling by s - 1 more on
    the right. Walking the layers gives block5_conv2's window [16r - 86, 16r + 101] (188 pixels): a
    tile needs 86 pixels of context, 96 on the 16-pixel grid.
    """
    stride, left, right = 1, 0, 0
    strides: dict[str, int] = {}
    for layer in extractor.model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            if tuple(layer.strides) != (1, 1) or tuple(layer.dilation_rate) != (1, 1):
                raise EngineError(f"tiling supports stride-1 undilated convolutions, not {layer.name}")
            radius = max(layer.kernel_size) // 2
            left, right = left + radius * stride, right + radius * stride
        elif isinstance(layer, keras.layers.MaxPooling2D | keras.layers.AveragePooling2D):
            pool = max(layer.pool_size)
            if tuple(layer.strides) != tuple(layer.pool_size) or layer.padding != "valid":
                raise EngineError(f"tiling supports non-overlapping 'valid' poolings, not {layer.name}")
            right += (pool - 1) * stride
            stride *= pool
        strides[layer.name] = stride
    grid = max(strides[name] for name in extractor.layers)
    # A cell covers [s*r, s*r + s - 1]; its window reaches ``left`` before and ``right - (s - 1)`` after.
    reach = max(left, right - (stride - 1))
    return Geometry(grid=grid, halo=math.ceil(reach / grid) * grid, strides=strides)


def plan_tiles(height: int, width: int, max_tile_pixels: int, geometry: Geometry) -> list[Tile]:
    """The tiling of a ``height`` x ``width`` image into crops of at most ``max_tile_pixels`` pixels
    (halos included) that computes the fewest pixels in all; interiors are multiples of the grid.

    Raises OptionsError when even the smallest tile (one grid cell plus its halos) is over budget.
    """
    rows = _splits(height, geometry)
    columns = _splits(width, geometry)
    best: tuple[int, int, int, int] | None = None  # (pixels computed, tiles, pieces down, pieces across)
    for down, (row_max, row_sum) in rows.items():
        for across, (column_max, column_sum) in columns.items():
            if row_max * column_max > max_tile_pixels:
                continue
            candidate = (row_sum * column_sum, down * across, down, across)
            best = candidate if best is None or candidate < best else best
    if best is None:
        smallest = min(r for r, _ in rows.values()) * min(c for c, _ in columns.values())
        raise OptionsError(
            f"max_tile_pixels {max_tile_pixels} is too small for this network: the smallest tile of a "
            f"{width}x{height} image (one {geometry.grid}-pixel cell and {geometry.halo} pixels of "
            f"context on each side) has {smallest} pixels"
        )
    _, _, down, across = best
    return [
        Tile(crop=(*row_crop, *column_crop), interior=(*row_interior, *column_interior))
        for row_interior, row_crop in _pieces(height, down, geometry)
        for column_interior, column_crop in _pieces(width, across, geometry)
    ]


def _pieces(length: int, count: int, geometry: Geometry) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """``count`` (interior, crop) intervals along one axis; the last interior may be shorter."""
    step = math.ceil(length / count / geometry.grid) * geometry.grid
    starts = range(0, length, step)
    return [
        (
            (start, min(start + step, length)),
            (max(0, start - geometry.halo), min(length, start + step + geometry.halo)),
        )
        for start in starts
    ]


def _splits(length: int, geometry: Geometry) -> dict[int, tuple[int, int]]:
    """For each distinct number of pieces along an axis: (longest crop, sum of the crops' lengths)."""
    found: dict[int, tuple[int, int]] = {}
    for count in range(1, math.ceil(length / geometry.grid) + 1):
        pieces = _pieces(length, count, geometry)
        crops = [crop_end - crop_start for _, (crop_start, crop_end) in pieces]
        found.setdefault(len(pieces), (max(crops), sum(crops)))
    return found


# Tile budgets when none is set (docs/performance.md, "Large prints"): on a CPU every job up to
# 1024 px runs untiled (tiles cost about 2x the CPU time) and a 2048 px print by ~1 MP tiles stays
# in a few GB; a GPU's memory holds a 2048 px step whole (about 3 KB a pixel, not measured here).
CPU_TILE_PIXELS = 1024 * 1024
GPU_TILE_PIXELS = 2048 * 2048


def resolve_tile_pixels(max_tile_pixels: int | None) -> int:
    """A tile budget as set (0: never tile), or this device's default when unset (None)."""
    if max_tile_pixels is not None:
        return max_tile_pixels
    return GPU_TILE_PIXELS if tf.config.list_physical_devices("GPU") else CPU_TILE_PIXELS


def needs_tiles(height: int, width: int, max_tile_pixels: int) -> bool:
    """True when an image of this size is to be evaluated by tiles (0 = never tile)."""
    return 0 < max_tile_pixels < height * width


def serves(targets: Targets) -> bool:
    """Whether the tiled passes compute these targets' loss: sums over positions without masks (the
    run plan's rule, spec/plan.py tiles_serve, seen from the targets)."""
    return targets.masks is None and targets.keep is None and targets.samples is None


class TiledObjective:
    """The loss parts and gradient of images by tiles of at most ``max_tile_pixels`` pixels (pass 2;
    pass 1, forward only, by tiles FORWARD_TILE_FACTOR times larger).

    A step that runs out of memory (``tf.errors.ResourceExhaustedError``, e.g. on a GPU) is retried
    with tiles of half the pixels, and that budget is kept for the rest of the run.
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        max_tile_pixels: int,
        label: str = "stylize",
        functions: TileFunctionCache | None = None,
    ) -> None:
        self.extractor = extractor
        self.max_tile_pixels = max_tile_pixels
        self.label = label
        self.geometry = geometry(extractor)
        self._cache = TileFunctionCache() if functions is None else functions
        self._functions: _TileFunctions | None = None  # found on first use, for the targets' layers
        self._plans: dict[tuple[int, int, bool], list[Tile]] = {}

    def tiles(self, height: int, width: int, forward_only: bool = False) -> list[Tile]:
        """The tiles of pass 2 (forward and backward), or of pass 1 (``forward_only``)."""
        key = (height, width, forward_only)
        if key not in self._plans:
            budget = self.max_tile_pixels * (FORWARD_TILE_FACTOR if forward_only else 1)
            self._plans[key] = plan_tiles(height, width, budget, self.geometry)
            logger.info(
                "%s: %dx%d in %d tile(s) of at most %d pixels for %s (halo %d)",
                self.label, width, height, len(self._plans[key]), budget,
                "the forward pass" if forward_only else "the gradient", self.geometry.halo,
            )  # fmt: skip
        return self._plans[key]

    def evaluate(self, image: tf.Tensor, targets: Targets, weights: LossWeights) -> dict[str, tf.Tensor]:
        """Weighted loss parts of ``image`` (1, H, W, 3): pass 1 only."""
        return self._retrying(lambda: self._loss(image, targets, weights, gradients=False)[0])

    def loss_and_gradient(
        self, image: tf.Tensor, targets: Targets, weights: LossWeights
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        return self._retrying(lambda: self._loss_and_gradient(image, targets, weights))

    def _retrying(self, evaluate: Callable[[], _T]) -> _T:
        def within(budget: int) -> _T:
            if budget != self.max_tile_pixels:  # halved after running out of memory: kept for the run
                self.max_tile_pixels = budget
                self._plans.clear()
            return evaluate()

        return with_smaller_tiles(within, self.max_tile_pixels, "in a step", self.label)

    def _loss(
        self, image: tf.Tensor, targets: Targets, weights: LossWeights, gradients: bool = True
    ) -> tuple[dict[str, tf.Tensor], _SumGradients | None]:
        """Pass 1: the loss parts, from the same terms as the untiled step (losses.py) applied to sums
        over the tiles; with ``gradients``, the loss's gradient with respect to those sums."""
        assert serves(targets), "the run plan gives no tile budget to masks or sliced_w"
        _, height, width, _ = image.shape
        strides = self.geometry.strides
        functions = self._functions_for(targets)
        squared: dict[str, tf.Tensor] = {}
        sums: dict[str, Moments] = {}
        for tile in self.tiles(height, width, forward_only=True):
            crop, box = _crop(image, tile)
            features, tile_sums = functions.forward(crop, box)
            for name, target in targets.content.items():
                distance = squared_distance(features[name], _slice(target, tile, strides[name]))
                squared[name] = squared[name] + distance if name in squared else distance
            for name, moments in tile_sums.items():
                sums[name] = add_moments(sums.get(name), moments)
        seconds = {name: moments.second for name, moments in sums.items()}
        firsts = {name: moments.first for name, moments in sums.items() if moments.first is not None}
        # Floats or tensors (objective.LossWeights.as_tensors) alike.
        weights = LossWeights(*(tf.cast(value, tf.float32) for value in weights))
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch((squared, seconds, firsts))
            watched = {
                name: normalised(Moments(sums[name].count, firsts.get(name), seconds[name]))
                for name in targets.style
            }
            style = style_loss(targets.loss, watched, targets.style, weights.style_layers, targets.weights)
            content = content_loss(squared, content_sizes(targets))
            parts = weighted_parts(weights, content, style, image)
        if not gradients:
            return parts, None
        found = tape.gradient(parts["total"], (squared, seconds, firsts))
        return parts, _SumGradients(*found)

    def _functions_for(self, targets: Targets) -> _TileFunctions:
        if self._functions is None:
            self._functions = self._cache.get(self.extractor, targets.content, targets.style, targets.loss)
        return self._functions

    def _loss_and_gradient(
        self, image: tf.Tensor, targets: Targets, weights: LossWeights
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        parts, found = self._loss(image, targets, weights)
        assert found is not None and self._functions is not None  # _loss built them
        _, height, width, _ = image.shape
        strides = self.geometry.strides
        gradient = np.array(self._functions.tv_gradient(image, tf.cast(weights.tv, tf.float32)))
        for tile in self.tiles(height, width):
            crop, box = _crop(image, tile)
            content_slices = {name: _slice(t, tile, strides[name]) for name, t in targets.content.items()}
            tile_gradient = self._functions.backward(crop, box, found, content_slices)
            top, bottom, left, right = tile.crop
            gradient[:, top:bottom, left:right, :] += tile_gradient.numpy()
        return parts, tf.constant(gradient)


class _SumGradients(NamedTuple):
    """d(loss)/d(each sum over the tiles): pass 2 backpropagates them through each tile's sums."""

    squared: dict[str, tf.Tensor]  # content layer -> d/d(sum of squared distances) (a scalar)
    second: dict[str, tf.Tensor]  # style layer -> d/d(second-moment sums) (1, C, C)
    first: dict[str, tf.Tensor]  # style layer -> d/d(feature sums) (1, C); empty for gram


def tiled_targets(
    extractor: FeatureExtractor,
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    blend: Sequence[float],
    content_layers: Sequence[str],
    style_layers: Sequence[str],
    max_tile_pixels: int,
    loss: str = "gram",
) -> Targets:
    """optimize.compute_targets by tiles (one blended style term); forward only, so by tiles of
    FORWARD_TILE_FACTOR x ``max_tile_pixels`` pixels, and an image within that in one piece."""
    targets = TiledTargets(extractor, content_layers, style_layers, loss)
    stats = [targets.style_stats(style, max_tile_pixels) for style in styles]
    return blended_targets(targets.content(content, max_tile_pixels), stats, blend, loss)


class TiledTargets:
    """The targets by tiles, in parts: the content's features and each style's statistics (what the
    style target cache keeps), with the same terms (losses.moment_sums) as the untiled targets."""

    def __init__(
        self,
        extractor: FeatureExtractor,
        content_layers: Sequence[str],
        style_layers: Sequence[str],
        loss: str = "gram",
        functions: TileFunctionCache | None = None,
    ) -> None:
        self.geometry = geometry(extractor)
        self.content_layers, self.style_layers = tuple(content_layers), tuple(style_layers)
        cache = TileFunctionCache() if functions is None else functions
        self.functions = cache.get(extractor, self.content_layers, self.style_layers, loss)

    def content(self, image: np.ndarray, max_tile_pixels: int) -> dict[str, tf.Tensor]:
        """Content layer -> the whole image's features (1, h, w, C), from the tiles' interiors."""
        features, _ = _tiled_features(
            self.functions, self.geometry, image, max_tile_pixels, self.content_layers
        )
        return {name: features[name] for name in self.content_layers}

    def style_stats(self, style: np.ndarray, max_tile_pixels: int) -> Stats:
        """Style layer -> (mean (C,) or None, second moment (C, C)) of one style image, by tiles."""
        sums = _tiled_features(self.functions, self.geometry, style, max_tile_pixels, ())[1]
        stats = {}
        for name, moments in sums.items():
            mean, second = normalised(moments)
            stats[name] = (None if mean is None else mean[0], second[0])
        return stats


def _tiled_features(
    functions: _TileFunctions, found: Geometry, image: np.ndarray, max_tile_pixels: int, layers: Sequence[str]
) -> tuple[dict[str, tf.Tensor], dict[str, Moments]]:
    """(layer -> the whole image's features, assembled from the tiles' interiors; style layer -> its
    moment sums over the tiles)."""
    height, width = image.shape[:2]
    budget = max_tile_pixels * FORWARD_TILE_FACTOR
    tiles = plan_tiles(height, width, budget if needs_tiles(height, width, budget) else height * width, found)
    batch = tf.constant(image[None], tf.float32)
    rows: dict[str, list[list[tf.Tensor]]] = {name: [] for name in layers}
    sums: dict[str, Moments] = {}
    previous_top = None
    for tile in tiles:
        crop, box = _crop(batch, tile)
        features, tile_sums = functions.forward(crop, box)
        for name, moments in tile_sums.items():
            sums[name] = add_moments(sums.get(name), moments)
        for name in layers:
            if tile.interior[0] != previous_top:
                rows[name].append([])
            rows[name][-1].append(features[name])
        previous_top = tile.interior[0]
    assembled = {name: tf.concat([tf.concat(row, axis=2) for row in rows[name]], axis=1) for name in layers}
    return assembled, sums


class TileFunctionCache:
    """One extractor's compiled tile functions, by layers and moment precision, kept by its step
    cache (steps.StepCache): their shapes are dynamic, so one graph serves every tile, image size and
    run, and a tiled job traces nothing once one has (a trace costs ~0.5 s of CPU per rung)."""

    def __init__(self) -> None:
        self._functions: dict[tuple, _TileFunctions] = {}
        self._lock = threading.Lock()

    def get(
        self,
        extractor: FeatureExtractor,
        content_layers: Iterable[str],
        style_layers: Iterable[str],
        loss: str,
    ) -> _TileFunctions:
        key = (tuple(content_layers), tuple(style_layers), moment_dtype(extractor, loss), loss in NEEDS_MEANS)
        with self._lock:
            found = self._functions.get(key)
            if found is None or found.extractor is not extractor:
                found = self._functions[key] = _TileFunctions(extractor, geometry(extractor), *key)
            return found


class _TileFunctions:
    """The compiled per-tile computations; shapes are left dynamic so every tile shares one graph.

    ``dtype`` and ``means``: the style loss's moment_sums (objective.moment_dtype, losses.NEEDS_MEANS).
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        found: Geometry,
        content_layers: tuple[str, ...],
        style_layers: tuple[str, ...],
        dtype: tf.DType | None = None,
        means: bool = False,
    ) -> None:
        self.extractor = extractor
        self.strides = found.strides
        self.content_layers, self.style_layers = content_layers, style_layers
        self.dtype, self.means = dtype, means
        crop = tf.TensorSpec([1, None, None, 3], tf.float32)
        box = tf.TensorSpec([4], tf.int32)
        # No AutoGraph (nothing here branches on tensors): it re-reads the source file when tracing,
        # so a file edited while a worker runs would be traced as whatever the file says by then.
        traced = functools.partial(tf.function, jit_compile=extractor.jit_compile, autograph=False)
        self.forward = traced(self._forward, input_signature=[crop, box])
        channels = {name: output.shape[-1] for name, output in extractor.model.output.items()}
        gradients = _SumGradients(
            squared={name: tf.TensorSpec([], tf.float32) for name in content_layers},
            second={
                name: tf.TensorSpec([1, channels[name], channels[name]], tf.float32) for name in style_layers
            },
            first={name: tf.TensorSpec([1, channels[name]], tf.float32) for name in style_layers if means},
        )
        targets = {
            name: tf.TensorSpec([1, None, None, channels[name]], tf.float32) for name in content_layers
        }
        self.backward = traced(self._backward, input_signature=[crop, box, gradients, targets])
        self.tv_gradient = tf.function(
            self._tv_gradient, input_signature=[crop, tf.TensorSpec([], tf.float32)], autograph=False
        )

    def _interiors(self, crop: tf.Tensor, box: tf.Tensor) -> dict[str, tf.Tensor]:
        features = self.extractor(crop)
        wanted = set(self.content_layers) | set(self.style_layers)
        return {
            name: _slice_box(value, box, self.strides[name])
            for name, value in features.items()
            if name in wanted
        }

    def _sums(self, interiors: dict[str, tf.Tensor]) -> dict[str, Moments]:
        return {
            name: moment_sums(interiors[name], None, self.dtype, self.means) for name in self.style_layers
        }

    def _forward(self, crop: tf.Tensor, box: tf.Tensor) -> tuple[dict[str, tf.Tensor], dict[str, Moments]]:
        """(content layer -> the interior's features, style layer -> the interior's moment sums),
        forward only."""
        interiors = self._interiors(crop, box)
        return {name: interiors[name] for name in self.content_layers}, self._sums(interiors)

    def _backward(
        self, crop: tf.Tensor, box: tf.Tensor, gradients: _SumGradients, content_targets: dict[str, tf.Tensor]
    ) -> tf.Tensor:
        """d(loss)/d(crop) through this tile's interior features: the sum, over every sum the loss is
        made of, of d(loss)/d(sum) times this tile's part of it."""
        with tf.GradientTape() as tape:
            tape.watch(crop)
            interiors = self._interiors(crop, box)
            sums = self._sums(interiors)
            terms = [tf.reduce_sum(gradients.second[name] * sums[name].second) for name in self.style_layers]
            terms += [tf.reduce_sum(gradients.first[name] * sums[name].first) for name in gradients.first]
            terms += [
                gradients.squared[name] * squared_distance(interiors[name], target)
                for name, target in content_targets.items()
            ]
            surrogate = tf.add_n(terms)
        return tape.gradient(surrogate, crop)

    @staticmethod
    def _tv_gradient(image: tf.Tensor, weight: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(image)
            loss = weight * total_variation_loss(image)
        return tape.gradient(loss, image)


def _slice_box(features: tf.Tensor, box: tf.Tensor, stride: int) -> tf.Tensor:
    """The interior of a crop's feature map; ``box`` is relative to the crop, in pixels, on the grid
    (floor division gives the map's own floor at the image's bottom and right edges)."""
    start = box // stride
    return features[:, start[0] : start[1], start[2] : start[3], :]


def _crop(image: tf.Tensor, tile: Tile) -> tuple[tf.Tensor, tf.Tensor]:
    top, bottom, left, right = tile.crop
    inner_top, inner_bottom, inner_left, inner_right = tile.interior
    box = tf.constant([inner_top - top, inner_bottom - top, inner_left - left, inner_right - left], tf.int32)
    return image[:, top:bottom, left:right, :], box


def _slice(target: tf.Tensor, tile: Tile, stride: int) -> tf.Tensor:
    """The part of a whole-image feature map under ``tile``'s interior."""
    top, bottom, left, right = tile.interior
    return target[:, top // stride : bottom // stride, left // stride : right // stride, :]


def with_smaller_tiles(evaluate: Callable[[int], _T], max_tile_pixels: int, what: str, label: str) -> _T:
    """``evaluate(max_tile_pixels)``, retried with tiles of half the pixels while it runs out of memory
    (``tf.errors.ResourceExhaustedError``, on a GPU), each retry logged as a warning; an EngineError
    that says so when not even the smallest tile fits. ``what`` names the work in the messages."""
    out_of_memory: tf.errors.ResourceExhaustedError | None = None
    while True:
        try:
            return evaluate(max_tile_pixels)
        except tf.errors.ResourceExhaustedError as error:
            out_of_memory = error
            logger.warning(
                "%s: out of memory with tiles of %d pixels %s (%s); retrying with tiles of %d",
                label, max_tile_pixels, what, first_line(error), max_tile_pixels // 2,
            )  # fmt: skip
            max_tile_pixels //= 2
        except OptionsError as error:  # no tile fits the halved budget
            if out_of_memory is None:
                raise
            raise EngineError(
                f"out of memory even with the smallest tiles {what} ({error}); free the device's memory "
                f"or use a smaller size"
            ) from out_of_memory


def first_line(error: Exception) -> str:
    """An error's first line, cut to 200 characters: a log line stays one line."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
