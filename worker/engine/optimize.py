"""stylize(): optimise an image so its VGG19 features match the content and its Gram matrices the style.

Content and style targets are computed once per run and passed to the compiled step explicitly (no
globals). Adam runs a ``tf.function`` step with a fresh Keras optimiser per run; L-BFGS runs SciPy's
L-BFGS-B over the same loss and gradient. Pixels stay in [0, 1] throughout.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import keras
import numpy as np
import scipy.optimize
import tensorflow as tf

from worker.engine import images as imaging
from worker.engine.errors import EngineError, ImageError, OptionsError
from worker.engine.losses import content_loss, gram_matrix, style_loss, total_variation_loss
from worker.engine.model import FeatureExtractor
from worker.engine.options import MIN_SIZE, StyleOptions

logger = logging.getLogger(__name__)

LOSS_PARTS = ("total", "content", "style", "tv")


@dataclass(frozen=True)
class Progress:
    step: int  # 1-based number of the step just taken
    total: int  # steps asked for
    loss: dict[str, float]  # weighted "total", "content", "style", "tv" of the image this step started from
    elapsed: float  # seconds since stylize() started


@dataclass(frozen=True)
class StyleResult:
    image: np.ndarray  # uint8 HxWx3 RGB
    steps: int  # steps done (fewer than asked when stopped, or when L-BFGS converged)
    stopped: bool  # should_stop() ended the run early
    loss_initial: dict[str, float]  # loss of the starting image
    loss_final: dict[str, float]  # loss of the optimised image (before preserve_colors)
    seconds: float


class Targets(NamedTuple):
    content: dict[str, tf.Tensor]  # content layer -> features of the content image
    style: dict[str, tf.Tensor]  # style layer -> blended Gram matrix of the style image(s)


class LossWeights(NamedTuple):
    content: float
    style: float
    tv: float
    style_layers: tuple[float, ...]  # one per style layer, summing to 1


ProgressCallback = Callable[[Progress], None]
PreviewCallback = Callable[[int, np.ndarray], None]
StopCheck = Callable[[], bool]


def stylize(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    options: StyleOptions | None = None,
    *,
    extractor: FeatureExtractor,
    on_progress: ProgressCallback | None = None,
    on_preview: PreviewCallback | None = None,
    should_stop: StopCheck | None = None,
    job_id: str | None = None,
    start_image: np.ndarray | None = None,
    start_step: int = 0,
    on_checkpoint: PreviewCallback | None = None,
    checkpoint_every: int = 0,
) -> StyleResult:
    """Render ``content`` (uint8 HxWx3) in the style of ``styles``; see docs/engine.md for the method.

    ``on_progress`` is called after every step (throttle it yourself), ``on_preview`` every
    ``options.preview_every`` steps, ``should_stop`` before every step: when it returns True the run
    ends and the partial image is returned with ``stopped=True``. ``job_id`` only labels log lines.

    Resuming (worker crash recovery): ``on_checkpoint(step, image)`` gets the raw optimised image
    (uint8, before preserve_colors) every ``checkpoint_every`` steps; passing it back as
    ``start_image`` with ``start_step`` continues from there. Adam's moments are not restored: the
    optimiser restarts from the checkpointed image, which costs a few steps of re-warming, not quality.
    """
    started = time.perf_counter()
    options = options or StyleOptions()
    label = f"job {job_id}" if job_id else "stylize"
    _check_inputs(content, styles, options, extractor)

    content = imaging.resize_to_max(content, options.max_size)
    height, width = content.shape[:2]
    if min(height, width) < MIN_SIZE:
        raise ImageError(
            f"the content image is {width}x{height} pixels at max_size {options.max_size}; "
            f"each side needs at least {MIN_SIZE} pixels (use a less elongated image or a larger size)"
        )
    if start_image is not None and not 0 <= start_step <= options.iterations:
        raise OptionsError(f"start_step must be in [0, {options.iterations}], not {start_step}")
    plan = scale_plan(height, width, options)
    logger.info(
        "%s: %dx%d, %d style image(s), %s x %d, scales %s, weights %s, %s%s",
        label, width, height, len(styles), options.optimizer, options.iterations,
        "/".join(f"{w}x{h}:{n}" for h, w, n in plan), extractor.weights, extractor.precision,
        " + XLA" if extractor.jit_compile else "",
    )  # fmt: skip
    callbacks = _Callbacks(
        started, on_progress, on_preview, should_stop or (lambda: False), on_checkpoint, checkpoint_every
    )
    full_content = imaging.to_float(content)
    runs = [
        _Run(
            extractor=extractor,
            targets=_targets_at(extractor, content, styles, options, scaled_height, scaled_width),
            options=options,
            content=full_content,
            callbacks=callbacks,
        )
        for scaled_height, scaled_width, _ in plan
    ]
    full_size = runs[-1]
    loss_initial = full_size.loss_of(initial_image(content, styles[0], options))
    if start_image is not None:
        image, steps = imaging.to_float(start_image), start_step
    else:  # init="style" resizes the original style to the coarsest size
        image, steps = initial_image(imaging.resize(content, *plan[0][:2]), styles[0], options), 0
    stopped, scale_end = False, 0
    for run, (scaled_height, scaled_width, scale_steps) in zip(runs, plan, strict=True):
        scale_end += scale_steps
        if steps >= scale_end:
            continue  # done before a resume
        optimise = run.adam if options.optimizer == "adam" else run.lbfgs
        # A scale gets the steps up to its end: those an L-BFGS scale left unused go to the next one.
        image, done, stopped = optimise(
            resize_float(image, scaled_height, scaled_width), steps, scale_end - steps
        )
        steps += done
        if stopped:
            break
    final = resize_float(image, height, width)
    loss_final = full_size.loss_of(final)
    seconds = time.perf_counter() - started
    logger.info(
        "%s: %s after %d step(s) in %.1f s, loss %.4g -> %.4g",
        label, "stopped" if stopped else "done", steps, seconds, loss_initial["total"], loss_final["total"],
    )  # fmt: skip
    return StyleResult(
        image=full_size.output(final),
        steps=steps,
        stopped=stopped,
        loss_initial=loss_initial,
        loss_final=loss_final,
        seconds=seconds,
    )


def scale_plan(height: int, width: int, options: StyleOptions) -> list[tuple[int, int, int]]:
    """(height, width, steps) for each of ``options.scales``, coarsest first, ending at full size.

    Scales whose shorter side would be under MIN_SIZE pixels, or that round to the size before them,
    are dropped; the iterations are split equally, the remainder going to the full size, and a
    scale left with no step is dropped too.
    """
    sizes = [(round(height * scale), round(width * scale)) for scale in options.scales[:-1]]
    sizes = [size for size in sizes if min(size) >= MIN_SIZE] + [(height, width)]
    sizes = list(dict.fromkeys(sizes))  # increasing scales: equal sizes are neighbours
    steps = [options.iterations // len(sizes)] * len(sizes)
    steps[-1] += options.iterations - sum(steps)
    return [(h, w, n) for (h, w), n in zip(sizes, steps, strict=True) if n > 0]


def resize_float(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A float HxWx3 image in [0, 1] resized (bicubic) to ``height`` x ``width``, still in [0, 1]."""
    if image.shape[:2] == (height, width):
        return image
    resized = tf.image.resize(image, (height, width), method="bicubic", antialias=True)
    return np.clip(resized.numpy(), 0.0, 1.0).astype(np.float32)


def _targets_at(
    extractor: FeatureExtractor,
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    options: StyleOptions,
    height: int,
    width: int,
) -> Targets:
    """The targets for an output of ``height`` x ``width``: the content resized to it, the styles to
    ``style_scale`` times its longest side (both from the originals)."""
    style_side = max(MIN_SIZE, round(options.style_scale * max(height, width)))
    return compute_targets(
        extractor,
        imaging.to_float(imaging.resize(content, height, width)),
        [imaging.to_float(imaging.resize_to_longest(style, style_side)) for style in styles],
        options,
    )


def _check_inputs(
    content: np.ndarray, styles: Sequence[np.ndarray], options: StyleOptions, extractor: FeatureExtractor
) -> None:
    if not styles:
        raise OptionsError("at least one style image is needed")
    for name, image in [("content", content), *((f"style {i + 1}", s) for i, s in enumerate(styles))]:
        if not (
            isinstance(image, np.ndarray)
            and image.dtype == np.uint8
            and image.ndim == 3
            and image.shape[2] == 3
        ):
            raise ImageError(f"the {name} image must be a uint8 HxWx3 RGB array (use images.load_image)")
    options.normalized_blend(len(styles))  # raises when the blend does not fit the style count
    needed = (*options.content_layers, *options.style_layers)
    missing = [name for name in needed if name not in extractor.layers]
    if missing:
        raise OptionsError(
            f"the extractor was built without layer(s) {', '.join(missing)}; build it with "
            f"load_extractor(content_layers=..., style_layers=...) matching the options"
        )


def compute_targets(
    extractor: FeatureExtractor, content: np.ndarray, styles: Sequence[np.ndarray], options: StyleOptions
) -> Targets:
    """Content features and blended style Gram matrices, computed once per run (float images in [0, 1])."""
    content_features = extractor(tf.constant(content[None]))
    content_targets = {name: content_features[name] for name in options.content_layers}
    style_targets: dict[str, tf.Tensor] = {}
    for style, weight in zip(styles, options.normalized_blend(len(styles)), strict=True):
        features = extractor(tf.constant(style[None]))
        for name in options.style_layers:
            gram = weight * gram_matrix(features[name])
            style_targets[name] = style_targets[name] + gram if name in style_targets else gram
    return Targets(content=content_targets, style=style_targets)


def loss_weights(options: StyleOptions) -> LossWeights:
    return LossWeights(
        options.content_weight, options.style_weight, options.tv_weight, options.normalized_layer_weights()
    )


def loss_parts(
    extractor: FeatureExtractor, weights: LossWeights, image: tf.Tensor, targets: Targets
) -> dict[str, tf.Tensor]:
    """Weighted loss parts {"total", "content", "style", "tv"} of ``image`` (1, H, W, 3) in [0, 1]."""
    features = extractor(image)
    grams = {name: gram_matrix(features[name]) for name in targets.style}
    parts = {
        "content": weights.content * content_loss(features, targets.content),
        "style": weights.style * style_loss(grams, targets.style, weights.style_layers),
        "tv": weights.tv * total_variation_loss(image),
    }
    parts["total"] = parts["content"] + parts["style"] + parts["tv"]
    return parts


def adam_step(
    extractor: FeatureExtractor,
    weights: LossWeights,
    optimizer: keras.optimizers.Optimizer,
    image: tf.Variable,
    targets: Targets,
) -> dict[str, tf.Tensor]:
    """One Adam update of ``image``, clipped to [0, 1]; returns the loss parts before the update."""
    with tf.GradientTape() as tape:
        parts = loss_parts(extractor, weights, image, targets)
    optimizer.apply_gradients([(tape.gradient(parts["total"], image), image)])
    image.assign(tf.clip_by_value(image, 0.0, 1.0))
    return parts


def loss_and_gradient(
    extractor: FeatureExtractor, weights: LossWeights, image: tf.Tensor, targets: Targets
) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
    with tf.GradientTape() as tape:
        tape.watch(image)
        parts = loss_parts(extractor, weights, image, targets)
    return parts, tape.gradient(parts["total"], image)


def initial_image(content: np.ndarray, style: np.ndarray, options: StyleOptions) -> np.ndarray:
    """The starting image (float32 HxWx3 in [0, 1]): the content, the first style, or seeded noise."""
    height, width = content.shape[:2]
    if options.init == "style":
        return imaging.to_float(imaging.resize(style, height, width))
    if options.init == "noise":
        return np.random.default_rng(options.seed).uniform(0.0, 1.0, (height, width, 3)).astype(np.float32)
    return imaging.to_float(content)


def _compile(function: Callable, extractor: FeatureExtractor, *bound: object) -> Callable:
    """tf.function over ``function`` with this run's Python objects bound (XLA if the extractor says so).

    A partial (not a closure) also gives TensorFlow a per-run key for its retracing statistics, so
    tracing once per run does not log "triggered tf.function retracing" warnings after a few jobs.
    """
    return tf.function(functools.partial(function, extractor, *bound), jit_compile=extractor.jit_compile)


def _floats(parts: dict[str, tf.Tensor]) -> dict[str, float]:
    return {name: float(parts[name]) for name in LOSS_PARTS}


class _StopRequested(Exception):
    """Raised from SciPy's callback to end L-BFGS early; never leaves this module."""


@dataclass(frozen=True)
class _Callbacks:
    started: float  # time.perf_counter() when stylize() began
    on_progress: ProgressCallback | None
    on_preview: PreviewCallback | None
    should_stop: StopCheck
    on_checkpoint: PreviewCallback | None
    checkpoint_every: int


@dataclass
class _Run:
    """One scale's optimiser loops: optimise(initial, first_step, steps) -> (final, steps done, stopped).

    ``targets`` are for this scale's image size; ``content`` is the full-size float content (for
    preserve_colors); previews and the output are upsampled to it.
    """

    extractor: FeatureExtractor
    targets: Targets
    options: StyleOptions
    content: np.ndarray
    callbacks: _Callbacks

    def __post_init__(self) -> None:
        self.weights = loss_weights(self.options)
        self._evaluate = _compile(loss_parts, self.extractor, self.weights)

    def loss_of(self, image: np.ndarray) -> dict[str, float]:
        return _floats(self._evaluate(tf.constant(image[None]), self.targets))

    def output(self, image: np.ndarray) -> np.ndarray:
        """float HxWx3 -> the full-size uint8 image a user sees (content colours restored when asked)."""
        image = resize_float(image, *self.content.shape[:2])
        if self.options.preserve_colors:
            image = imaging.transfer_luminance(image, self.content)
        return imaging.to_uint8(image)

    def report(self, step: int, parts: dict[str, float], image: Callable[[], np.ndarray]) -> None:
        if not math.isfinite(parts["total"]):
            raise EngineError(
                f"the loss became {parts['total']} at step {step}; lower the learning rate or loss weights"
            )
        callbacks = self.callbacks
        if callbacks.on_progress is not None:
            elapsed = time.perf_counter() - callbacks.started
            total = self.options.iterations
            callbacks.on_progress(Progress(step=step, total=total, loss=parts, elapsed=elapsed))
        every = self.options.preview_every
        if callbacks.on_preview is not None and every and step % every == 0:
            callbacks.on_preview(step, self.output(image()))
        every = callbacks.checkpoint_every
        if callbacks.on_checkpoint is not None and every and step % every == 0:
            raw = resize_float(image(), *self.content.shape[:2])  # full size, before preserve_colors
            callbacks.on_checkpoint(step, imaging.to_uint8(raw))

    def adam(self, initial: np.ndarray, first_step: int, steps: int) -> tuple[np.ndarray, int, bool]:
        options = self.options
        image = tf.Variable(initial[None], dtype=tf.float32, name="stylized")
        optimizer = keras.optimizers.Adam(
            learning_rate=options.learning_rate, beta_1=options.beta_1, epsilon=options.epsilon
        )
        optimizer.build([image])  # its moments exist before tracing: XLA cannot create variables
        step = _compile(adam_step, self.extractor, self.weights, optimizer, image)
        done, stopped = 0, False
        for number in range(1, steps + 1):
            if self.callbacks.should_stop():
                stopped = True
                break
            parts = _floats(step(self.targets))
            done = number
            self.report(first_step + number, parts, lambda: image.numpy()[0])
        return image.numpy()[0], done, stopped

    def lbfgs(self, initial: np.ndarray, first_step: int, steps: int) -> tuple[np.ndarray, int, bool]:
        shape = (1, *initial.shape)
        evaluate = _compile(loss_and_gradient, self.extractor, self.weights)
        last: dict[str, dict[str, float]] = {}
        accepted = {"x": initial.astype(np.float64).ravel(), "steps": 0}

        def value_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
            parts, gradient = evaluate(tf.constant(flat.reshape(shape), dtype=tf.float32), self.targets)
            last["parts"] = _floats(parts)
            return last["parts"]["total"], gradient.numpy().astype(np.float64).ravel()

        def on_iteration(intermediate_result: scipy.optimize.OptimizeResult) -> None:
            accepted["x"], accepted["steps"] = intermediate_result.x, accepted["steps"] + 1
            # L-BFGS-B's line search ends by evaluating the accepted point, so ``last`` is its loss.
            step = first_step + accepted["steps"]
            self.report(step, last["parts"], lambda: _as_image(accepted["x"], initial.shape))
            if self.callbacks.should_stop():
                raise _StopRequested

        if self.callbacks.should_stop():
            return initial, 0, True
        stopped = False
        try:
            result = scipy.optimize.minimize(
                value_and_gradient,
                accepted["x"],
                jac=True,
                method="L-BFGS-B",
                bounds=[(0.0, 1.0)] * accepted["x"].size,
                callback=on_iteration,
                options={"maxiter": steps},
            )
            accepted["x"] = result.x
        except _StopRequested:
            stopped = True
        return _as_image(accepted["x"], initial.shape), int(accepted["steps"]), stopped


def _as_image(flat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.clip(flat.reshape(shape), 0.0, 1.0).astype(np.float32)
