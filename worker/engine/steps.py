"""Compiled steps: one image size's Adam step, loss and loss-and-gradient, kept per extractor.

Compiled steps are kept per image size in the extractor's ``StepCache`` (``steps_for``): loss
weights, learning rate and Adam's constants are tensors passed in, not values baked into the graph,
so a later run of the same size and layers starts without tracing anything (a warm worker's second
job of a size). ``TiledSteps`` gives one size's steps by tiles (tiling.TiledObjective) when the
image is over the plan's tile budget, or when a whole step runs out of memory.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np
import tensorflow as tf

from spec.errors import OptionsError
from spec.options import StyleOptions
from worker.engine import tiling
from worker.engine.losses import gram_matrix
from worker.engine.model import FeatureExtractor
from worker.engine.objective import LossWeights, Targets, loss_and_gradient, loss_parts, moment_dtype

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
# (image, targets, weights) -> the weighted loss parts: objective.loss_parts, compiled
Evaluate = Callable[[tf.Tensor, Targets, LossWeights], dict[str, tf.Tensor]]


class AdamHyper(NamedTuple):
    learning_rate: float
    beta_1: float
    beta_2: float
    epsilon: float


class AdamState(NamedTuple):
    """Adam's state at the end of one size, carried to the next (resized) so it does not start cold."""

    moment: tf.Tensor | tf.Variable  # (1, H, W, 3)
    velocity: tf.Tensor | tf.Variable  # (1, H, W, 3)
    steps: float  # updates taken: the bias correction goes on from there


class StepCache:
    """Compiled steps of recent image sizes, shared by the runs of one extractor, LRU-bounded.

    One entry per (image size, content layers, style layers): the traced Adam step with its
    variables (image, moments, step count), the loss evaluation and L-BFGS's loss-and-gradient, and
    per layer choice the shape-independent target function. Each size's graphs (and, on a GPU, XLA
    programs) stay in memory, hence the bound: ``max_entries`` sizes, least recently used dropped.
    A run holds its entries (``use``); a second run of the same size at the same time (threads)
    gets entries of its own, not kept.
    """

    def __init__(self, max_entries: int = 4) -> None:
        if max_entries < 1:
            raise OptionsError(f"the step cache needs at least 1 entry, not {max_entries}")
        self.max_entries = max_entries
        self.hits = 0  # runs (scales) that found their size's compiled steps
        self.misses = 0
        self._entries: OrderedDict[tuple, Compiled] = OrderedDict()
        self._features: dict[tuple, tuple[FeatureExtractor, Callable]] = {}
        self._evaluate: tuple[FeatureExtractor, Evaluate] | None = None
        self.tile_functions = tiling.TileFunctionCache()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @contextlib.contextmanager
    def use(
        self, extractor: FeatureExtractor, height: int, width: int, options: StyleOptions
    ) -> Iterator[Compiled]:
        key = (height, width, options.content_layers, options.style_layers)
        evaluate = self.evaluate(extractor)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.extractor is extractor and not entry.busy:
                self._entries.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
                entry = Compiled(extractor, height, width, evaluate)
                if key not in self._entries or self._entries[key].extractor is not extractor:
                    self._entries[key] = entry
                    while len(self._entries) > self.max_entries:
                        self._entries.popitem(last=False)  # a run still holding it keeps its own reference
            entry.busy = True
        try:
            yield entry
        finally:
            entry.busy = False

    def evaluate(self, extractor: FeatureExtractor) -> Evaluate:
        """The loss parts of an image, compiled once for every size (TensorFlow relaxes its shapes
        at the second): a run evaluates only its start and its result, too few calls to repay a
        graph per size (~0.25 s of CPU each)."""
        with self._lock:
            if self._evaluate is None or self._evaluate[0] is not extractor:
                evaluate = tf.function(
                    functools.partial(_loss_parts, extractor),
                    jit_compile=extractor.jit_compile,
                    reduce_retracing=True,
                    autograph=False,
                )
                self._evaluate = (extractor, evaluate)
            return self._evaluate[1]

    def features(
        self, extractor: FeatureExtractor, content_layers: Sequence[str], style_layers: Sequence[str]
    ) -> Callable[[tf.Tensor], tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]]:
        """image (1, H, W, 3) -> (content layer -> features, style layer -> Gram matrix), compiled
        once for any image size (target images come in every size and aspect ratio)."""
        key = (tuple(content_layers), tuple(style_layers))
        with self._lock:
            found = self._features.get(key)
            if found is None or found[0] is not extractor:

                def features(image: tf.Tensor) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
                    values = extractor(image)
                    return (
                        {name: values[name] for name in key[0]},
                        {name: gram_matrix(values[name], moment_dtype(extractor, "gram")) for name in key[1]},
                    )

                signature = [tf.TensorSpec((1, None, None, 3), tf.float32)]
                found = (extractor, tf.function(features, input_signature=signature, autograph=False))
                self._features[key] = found
            return found[1]


# Each extractor's step cache, made on first use; it goes when the extractor does.
_CACHES: weakref.WeakKeyDictionary[FeatureExtractor, StepCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def steps_for(extractor: FeatureExtractor) -> StepCache:
    """The extractor's step cache (``extractor.step_cache_size`` sizes); a throw-away one for an
    extractor that keeps none (``step_cache_size`` 0: one built by hand)."""
    if extractor.step_cache_size < 1:
        return StepCache(1)
    with _CACHES_LOCK:
        cache = _CACHES.get(extractor)
        if cache is None:
            cache = _CACHES[extractor] = StepCache(extractor.step_cache_size)
        return cache


class Compiled:
    """One image size's compiled functions and Adam's variables; see StepCache."""

    def __init__(
        self, extractor: FeatureExtractor, height: int, width: int, evaluate: Evaluate | None = None
    ) -> None:
        self.extractor = extractor
        self.busy = False
        jit = extractor.jit_compile
        zeros = tf.zeros((1, height, width, 3), tf.float32)
        self.image = tf.Variable(zeros, name="stylized")
        self.moment = tf.Variable(zeros, trainable=False, name="adam_m")
        self.velocity = tf.Variable(zeros, trainable=False, name="adam_v")
        self.iterations = tf.Variable(0.0, trainable=False, name="adam_steps")
        # Partials, not bound methods: TensorFlow counts traces per underlying function, and a worker
        # that runs many sizes would log "excessive retracing" warnings for entries that trace once.
        # No autograph: the steps branch on no tensor, and converting them costs about a second of
        # CPU at a process's first trace (docs/testing.md).
        compile_step = functools.partial(tf.function, jit_compile=jit, autograph=False)
        self.evaluate = (
            compile_step(functools.partial(_loss_parts, extractor)) if evaluate is None else evaluate
        )
        self.loss_and_gradient = compile_step(functools.partial(Compiled._loss_and_gradient, self))
        self.adam_step = compile_step(functools.partial(Compiled._adam_step, self))
        self.apply_adam = compile_step(self._apply_adam)  # after a tiled gradient

    def reset(self, initial: np.ndarray) -> None:
        """Adam starts over from ``initial`` (H x W x 3): moments and step count zero."""
        self.image.assign(initial[None])
        self.moment.assign(tf.zeros_like(self.moment))
        self.velocity.assign(tf.zeros_like(self.velocity))
        self.iterations.assign(0.0)

    def carry(self, initial: np.ndarray, state: AdamState) -> None:
        """Adam goes on from ``state`` (another size's) instead of starting cold: the moments resized
        to this size as crowsonkb/style-transfer-pytorch does (bicubic for the mean, bilinear and
        non-negative for the second moment), the step count kept. Not rescaled to this size's smaller
        per-pixel gradients: that measured within 5% either way (docs/performance.md)."""
        size = self.image.shape[1:3]
        self.image.assign(initial[None])
        self.moment.assign(tf.image.resize(state.moment, size, method="bicubic"))
        self.velocity.assign(tf.nn.relu(tf.image.resize(state.velocity, size, method="bilinear")))
        self.iterations.assign(state.steps)

    def state(self) -> AdamState:
        """The state now, not a copy: the next size's carry() reads it at once (a plan's sizes differ,
        so they never share these variables)."""
        return AdamState(self.moment, self.velocity, float(self.iterations.numpy()))

    def _loss_and_gradient(
        self, image: tf.Tensor, targets: Targets, weights: LossWeights
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        return loss_and_gradient(self.extractor, weights, image, targets)

    def _adam_step(self, targets: Targets, weights: LossWeights, hyper: AdamHyper) -> dict[str, tf.Tensor]:
        """One Adam update of the image, clipped to [0, 1]; returns the loss parts before the update.

        Keras's Adam, written out so its state lives here (reset per run, reused by the next):
        m += (g - m)(1 - b1), v += (g^2 - v)(1 - b2), image -= lr sqrt(1 - b2^t) / (1 - b1^t)
        m / (sqrt(v) + epsilon).
        """
        image = self.image
        with tf.GradientTape() as tape:
            parts = loss_parts(self.extractor, weights, image, targets)
        self._apply_adam(tape.gradient(parts["total"], image), hyper)
        return parts

    def _apply_adam(self, gradient: tf.Tensor, hyper: AdamHyper) -> None:
        image = self.image
        step = self.iterations.assign_add(1.0)
        moment = self.moment.assign_add((gradient - self.moment) * (1.0 - hyper.beta_1))
        velocity = self.velocity.assign_add((tf.square(gradient) - self.velocity) * (1.0 - hyper.beta_2))
        alpha = hyper.learning_rate * tf.sqrt(1.0 - hyper.beta_2**step) / (1.0 - hyper.beta_1**step)
        image.assign(tf.clip_by_value(image - alpha * moment / (tf.sqrt(velocity) + hyper.epsilon), 0.0, 1.0))


def _loss_parts(
    extractor: FeatureExtractor, image: tf.Tensor, targets: Targets, weights: LossWeights
) -> dict[str, tf.Tensor]:
    return loss_parts(extractor, weights, image, targets)


class TiledSteps:
    """One image size's steps with ``Compiled``'s interface (``evaluate``,
    ``loss_and_gradient``, ``adam_step``): by tiles when the image exceeds ``max_tile_pixels`` (0:
    never), else the compiled untiled steps themselves, unchanged.

    An untiled step that runs out of memory (``tf.errors.ResourceExhaustedError``, on a GPU) is
    retried by tiles of half the image's pixels, and the rest of the run stays tiled; a tiled one
    halves its tiles (TiledObjective). Both are logged as warnings.
    """

    def __init__(self, compiled: Compiled, max_tile_pixels: int, label: str = "stylize") -> None:
        self.compiled = compiled
        self.label = label
        _, height, width, _ = compiled.image.shape
        self.size = (height, width)
        tiled = tiling.needs_tiles(height, width, max_tile_pixels)
        self.objective = self._objective(max_tile_pixels) if tiled else None

    def _objective(self, max_tile_pixels: int) -> tiling.TiledObjective:
        extractor = self.compiled.extractor
        functions = steps_for(extractor).tile_functions
        return tiling.TiledObjective(extractor, max_tile_pixels, self.label, functions)

    def evaluate(self, image: tf.Tensor, targets: Targets, weights: LossWeights) -> dict[str, tf.Tensor]:
        return self._either(self.compiled.evaluate, lambda: self._tiled.evaluate, image, targets, weights)

    def loss_and_gradient(
        self, image: tf.Tensor, targets: Targets, weights: LossWeights
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        untiled = self.compiled.loss_and_gradient
        return self._either(untiled, lambda: self._tiled.loss_and_gradient, image, targets, weights)

    def adam_step(self, targets: Targets, weights: LossWeights, hyper: AdamHyper) -> dict[str, tf.Tensor]:
        """One Adam update of ``compiled.image``, clipped to [0, 1]; the loss parts before it."""
        return self._either(self.compiled.adam_step, lambda: self._tiled_adam_step, targets, weights, hyper)

    @property
    def _tiled(self) -> tiling.TiledObjective:
        assert self.objective is not None
        return self.objective

    def _tiled_adam_step(
        self, targets: Targets, weights: LossWeights, hyper: AdamHyper
    ) -> dict[str, tf.Tensor]:
        compiled = self.compiled
        image = tf.convert_to_tensor(compiled.image)
        parts, gradient = self._tiled.loss_and_gradient(image, targets, weights)
        compiled.apply_adam(gradient, hyper)  # the untiled step's own update
        return parts

    def _either(
        self, untiled: Callable[..., _T], tiled: Callable[[], Callable[..., _T]], *arguments: Any
    ) -> _T:
        """``untiled(*arguments)`` while untiled and it fits in memory, else ``tiled()(*arguments)``."""
        if self.objective is None:
            try:
                return untiled(*arguments)
            except tf.errors.ResourceExhaustedError as error:
                if not any(isinstance(a, Targets) and tiling.serves(a) for a in arguments):
                    raise  # masks or sliced_w: tiles would compute another loss (the plan's rule)
                height, width = self.size
                budget = height * width // 2
                logger.warning(
                    "%s: out of memory at %dx%d untiled (%s); retrying the step by tiles of %d pixels",
                    self.label, width, height, tiling.first_line(error), budget,
                )  # fmt: skip
                self.objective = self._objective(budget)
        return tiled()(*arguments)
