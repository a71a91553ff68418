"""stylize(): optimise an image so its VGG19 features match the content and its Gram matrices the style.

Each rung's content and style targets are computed when the rung starts (a style's from the style
target cache when an earlier run had it) and passed to the compiled step explicitly (no globals).
Adam runs a ``tf.function`` step whose state (image, moments, step count) is reset per run; L-BFGS
runs SciPy's L-BFGS-B over the same loss and gradient. Pixels stay in [0, 1] throughout.

The loss is objective.py's composition of losses.py's terms; the compiled steps are steps.py's,
kept per image size for the extractor (steps.steps_for), so a later run of the same size and layers
starts without tracing anything (a warm worker's second job of a size).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import tensorflow as tf

from spec.errors import EngineError, ImageError, OptionsError
from spec.options import StyleOptions
from spec.plan import RunPlan
from worker.engine import control as controls
from worker.engine import images as imaging
from worker.engine import losses, tiling
from worker.engine import temporal as temporal_terms
from worker.engine.hooks import Checkpoint, Hooks, Progress, RunImages
from worker.engine.model import FeatureExtractor
from worker.engine.objective import (
    LOSS_PARTS,
    LossWeights,
    Targets,
    blended_targets,
    moment_dtype,
    sliced_targets,
    with_draw,
)
from worker.engine.steps import AdamHyper, AdamState, Compiled, TiledSteps, steps_for
from worker.engine.style_cache import StyleLookup, StyleTargetCache

logger = logging.getLogger(__name__)

ADAM_BETA_2 = 0.999  # Keras's default, as before


@dataclass(frozen=True)
class StyleResult:
    image: np.ndarray  # uint8 HxWx3 RGB
    steps: int  # steps done (fewer than asked when stopped, or when L-BFGS converged)
    stopped: bool  # should_stop() ended the run early
    loss_initial: dict[str, float]  # loss of the starting image
    loss_final: dict[str, float]  # loss of the optimised image (before preserve_colors)
    seconds: float
    warm_start: bool = False  # every scale's compiled steps came from the extractor's StepCache
    # (height, width) the losses are measured at: the output's, or the rung a stopped run reached
    loss_size: tuple[int, int] = (0, 0)
    # style images' targets (one per style and rung run) found in the style target cache, or computed
    style_targets: dict[str, int] = dataclasses.field(default_factory=dict)
    # the optimised image at the output's size before colours and masks (a video's next frame starts
    # from it, as a resumed run does from a checkpoint); None from a stylize() that did not keep it
    raw: np.ndarray | None = None


def stylize(
    plan: RunPlan,
    images: RunImages,
    extractor: FeatureExtractor,
    hooks: Hooks | None = None,
    *,
    style_cache: StyleTargetCache | None = None,
    temporal: temporal_terms.TemporalTarget | None = None,
) -> StyleResult:
    """Render ``images.content`` in the style of ``images.styles`` as ``plan`` (spec/plan.py) decides:
    its rungs and their steps, each style's side, its tiles; docs/engine.md has the method.

    A plan with a refusal raises it (PlanRefused, an OptionsError). ``hooks`` carries progress,
    previews, checkpoints, the stop check and where to resume (worker/engine/hooks.py). Adam's moments
    are not restored on a resume: the optimiser restarts from the checkpointed image, which costs a
    few steps of re-warming, not quality. Each rung's targets are computed when the rung starts, its
    styles' from ``style_cache`` when it has them (worker/engine/style_cache.py; None: no cache).
    ``temporal``: a video frame's temporal loss, added to every step's (worker/engine/video.py).
    """
    started = time.perf_counter()
    hooks = hooks or Hooks()
    options = plan.check().options
    label = hooks.label
    _check_inputs(plan, images, extractor)
    content = imaging.resize(images.content, plan.height, plan.width)
    height, width = content.shape[:2]
    resume = hooks.resume
    if resume is not None and not 0 <= resume.step <= options.iterations:
        raise OptionsError(f"a run resumes from a step in [0, {options.iterations}], not {resume.step}")
    rungs = [(rung.height, rung.width, rung.steps) for rung in plan.rungs]
    max_tile_pixels = plan.max_tile_pixels
    extractor = controls.with_pooling(extractor, options.pooling)
    styles = controls.colour_styles(images.styles, content, options)
    control = controls.prepare(options, content, styles, images.masks)
    logger.info(
        "%s: %dx%d, %d style image(s), %s x %d, scales %s, weights %s, %s%s",
        label, width, height, len(styles), options.optimizer, options.iterations,
        "/".join(f"{w}x{h}:{n}" for h, w, n in rungs), extractor.weights, extractor.precision,
        " + XLA" if extractor.jit_compile else "",
    )  # fmt: skip
    full_content = imaging.to_float(content)
    cache = steps_for(extractor)
    hits = cache.hits
    lookup = StyleLookup(style_cache, extractor, styles)
    targets_at = functools.partial(
        _targets_at, extractor, content, styles, options, control=control, max_tile_pixels=max_tile_pixels,
        label=label, lookup=lookup,
    )  # fmt: skip
    with contextlib.ExitStack() as held:
        runs = [
            _Run(
                extractor=extractor,
                make_targets=temporal_terms.attached(
                    functools.partial(targets_at, rung.height, rung.width, rung.style_side),
                    temporal,
                    rung.height,
                    rung.width,
                ),
                options=options,
                content=full_content,
                hooks=hooks,
                started=started,
                control=control,
                compiled=held.enter_context(cache.use(extractor, rung.height, rung.width, options)),
                max_tile_pixels=max_tile_pixels,
                label=label,
            )
            for rung in plan.rungs
        ]
        warm = cache.hits - hits == len(runs)
        result = _optimise(runs, rungs, content, styles, options, resume, started, label)
    return dataclasses.replace(
        result, warm_start=warm, style_targets={"cached": lookup.hits, "computed": lookup.misses}
    )


def _optimise(
    runs: list[_Run],
    plan: list[tuple[int, int, int]],
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    options: StyleOptions,
    resume: Checkpoint | None,
    started: float,
    label: str,
) -> StyleResult:
    height, width = content.shape[:2]
    if resume is not None:
        image, steps = imaging.to_float(resume.image), resume.step
    else:  # init="style" resizes the original style to the coarsest size
        image, steps = initial_image(imaging.resize(content, *plan[0][:2]), styles[0], options), 0
    stopped, scale_end = False, 0
    reached = len(runs) - 1  # the rung whose targets the losses are measured with: the last one run
    adam_state: AdamState | None = None  # a resumed run's first size starts Adam cold
    for index, (run, (scaled_height, scaled_width, scale_steps)) in enumerate(zip(runs, plan, strict=True)):
        scale_end += scale_steps
        if steps >= scale_end:
            continue  # done before a resume
        reached = index
        scaled = resize_float(image, scaled_height, scaled_width)
        # A size gets the steps up to its end: those an L-BFGS size left unused go to the next one.
        if options.optimizer == "adam":
            image, done, stopped, adam_state = run.adam(scaled, steps, scale_end - steps, adam_state)
        else:
            image, done, stopped = run.lbfgs(scaled, steps, scale_end - steps)
        steps += done
        if stopped:
            break
    final = resize_float(image, height, width)
    # The losses at the rung reached: the output's size when the run got there (computed after the
    # steps, so no rung's targets are needed before its first step), else the rung it was stopped at.
    at = runs[reached]
    loss_height, loss_width = plan[reached][:2]
    loss_final = at.loss_of(resize_float(image, loss_height, loss_width))
    # A fresh one-scale run's first step evaluated the loss of the starting image: it is the initial
    # loss, taken from there instead of one more forward pass.
    fresh = resume is None and len(runs) == 1
    loss_initial = at.first_loss if fresh else None
    if loss_initial is None:
        start = initial_image(imaging.resize(content, loss_height, loss_width), styles[0], options)
        loss_initial = at.loss_of(start)
    seconds = time.perf_counter() - started
    logger.info(
        "%s: %s after %d step(s) in %.1f s, loss %.4g -> %.4g",
        label, "stopped" if stopped else "done", steps, seconds, loss_initial["total"], loss_final["total"],
    )  # fmt: skip
    return StyleResult(
        image=runs[-1].output(final),
        steps=steps,
        stopped=stopped,
        loss_initial=loss_initial,
        loss_final=loss_final,
        seconds=seconds,
        loss_size=(loss_height, loss_width),
        raw=imaging.to_uint8(final),
    )


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
    style_side: int,
    control: controls.ControlPlan | None = None,
    max_tile_pixels: int = 0,
    label: str = "stylize",
    lookup: StyleLookup | None = None,
) -> Targets:
    """The targets for an output of ``height`` x ``width``: the content resized to it, the styles to
    ``style_side`` on their longest side (the plan's; both from the originals). Each style's
    statistics come from ``lookup`` (the style target cache) when it has them.

    By tiles when an image exceeds ``max_tile_pixels`` (the plan's: 0 where tiles cannot serve the
    run), and when the whole images run out of memory (a GPU; the Gram loss without masks), with
    tiles halved until they fit.
    """
    started = time.perf_counter()
    lookup = lookup or StyleLookup(None, extractor, styles)
    computed = lookup.misses
    scaled_content = imaging.to_float(imaging.resize(content, height, width))
    scaled_styles = [imaging.to_float(imaging.resize_to_longest(style, style_side)) for style in styles]
    images = [scaled_content, *scaled_styles]
    if any(tiling.needs_tiles(*image.shape[:2], max_tile_pixels) for image in images):
        targets = _tiled_targets(
            extractor, scaled_content, scaled_styles, options, max_tile_pixels, label, lookup, style_side
        )
    elif options.style_loss == "sliced_w":  # each style's features themselves (no masks: the plan)
        targets = _sliced_targets(extractor, scaled_content, scaled_styles, options, lookup, style_side)
    elif control is not None:  # masks or mean_cov: each style's moments instead of its Gram matrices
        features = steps_for(extractor).features(extractor, options.content_layers, options.style_layers)
        content_targets, _ = features(tf.constant(scaled_content[None]))
        layers, dtype = options.style_layers, moment_dtype(extractor, options.style_loss)
        moments = functools.partial(controls.style_moments, extractor, layers=layers, dtype=dtype)
        what = ("moments", layers, str(dtype))
        stats = [
            lookup.get(index, style_side, what, functools.partial(moments, style))
            for index, style in enumerate(scaled_styles)
        ]
        targets = control.attach(content_targets, extractor, scaled_content, stats, layers)
    else:
        try:
            targets = compute_targets(extractor, scaled_content, scaled_styles, options, lookup, style_side)
        except tf.errors.ResourceExhaustedError as error:
            budget = max(image.shape[0] * image.shape[1] for image in images) // 2
            logger.warning(
                "%s: out of memory computing the targets untiled (%s); computing them by tiles of %d pixels",
                label, tiling.first_line(error), budget,
            )  # fmt: skip
            targets = _tiled_targets(
                extractor, scaled_content, scaled_styles, options, budget, label, lookup, style_side
            )
    logger.info(
        "%s: targets for %dx%d in %.2f s (%d of %d style(s) cached)",
        label, width, height, time.perf_counter() - started, len(styles) - (lookup.misses - computed),
        len(styles),
    )  # fmt: skip
    return targets


def _tiled_targets(
    extractor: FeatureExtractor,
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    options: StyleOptions,
    max_tile_pixels: int,
    label: str,
    lookup: StyleLookup,
    style_side: int,
) -> Targets:
    """tiling.tiled_targets, through the style target cache (each style's statistics by tiles of a
    budget), its tiles halved while they run out of memory (as a tiled step's are)."""
    blend, loss = options.normalized_blend(len(styles)), options.style_loss
    tiled = tiling.TiledTargets(
        extractor, options.content_layers, options.style_layers, loss, steps_for(extractor).tile_functions
    )

    def within(budget: int) -> Targets:
        content_targets = tiled.content(content, budget)  # first, as before: where an OOM shows first
        what = ("tiled", options.style_layers, budget, loss, str(moment_dtype(extractor, loss)))
        stats = [
            lookup.get(index, style_side, what, lambda s=style: tiled.style_stats(s, budget))
            for index, style in enumerate(styles)
        ]
        return blended_targets(content_targets, stats, blend, loss)

    return tiling.with_smaller_tiles(within, max_tile_pixels, "computing the targets", label)


def _sliced_targets(
    extractor: FeatureExtractor,
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    options: StyleOptions,
    lookup: StyleLookup,
    style_side: int,
) -> Targets:
    """Targets of style_loss=sliced_w: the content's features, each style's (through the cache)."""
    features = steps_for(extractor).features(extractor, options.content_layers, options.style_layers)
    content_targets, _ = features(tf.constant(content[None]))
    layers = options.style_layers

    def style_features(style: np.ndarray) -> dict[str, tf.Tensor]:
        found = extractor(tf.constant(style[None]))
        return {
            name: losses.style_sample(tf.reshape(found[name], (-1, found[name].shape[-1]))) for name in layers
        }

    what = ("features", layers, losses.SLICED_STYLE_PIXELS)
    samples = [
        lookup.get(index, style_side, what, functools.partial(style_features, style))
        for index, style in enumerate(styles)
    ]
    return sliced_targets(content_targets, samples, options.normalized_blend(len(styles)), options.seed)


def _check_inputs(plan: RunPlan, images: RunImages, extractor: FeatureExtractor) -> None:
    content, styles = images.content, images.styles
    for name, image in [("content", content), *((f"style {i + 1}", s) for i, s in enumerate(styles))]:
        if not (
            isinstance(image, np.ndarray)
            and image.dtype == np.uint8
            and image.ndim == 3
            and image.shape[2] == 3
        ):
            raise ImageError(f"the {name} image must be a uint8 HxWx3 RGB array (use images.load_image)")
    shapes = (content.shape[:2], tuple(style.shape[:2] for style in styles))
    if shapes != (plan.content, plan.styles):
        raise OptionsError(
            f"the plan was made for images of {(plan.content, plan.styles)} pixels, not {shapes}: "
            "make it with spec.plan.plan_run from these images' shapes"
        )
    given_masks = images.masks is not None and any(mask is not None for mask in images.masks)
    if given_masks != plan.has_masks:
        raise OptionsError("the plan and the images disagree about masks: plan the run with its masks")
    options = plan.options
    needed = (*options.content_layers, *options.style_layers)
    missing = [name for name in needed if name not in extractor.layers]
    if missing:
        raise OptionsError(
            f"the extractor was built without layer(s) {', '.join(missing)}; build it with "
            f"load_extractor(content_layers=..., style_layers=...) matching the options"
        )


def compute_targets(
    extractor: FeatureExtractor,
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    options: StyleOptions,
    lookup: StyleLookup | None = None,
    style_side: int = 0,
) -> Targets:
    """Content features and blended style Gram matrices (float images in [0, 1]) for the Gram loss
    without masks; each style's Gram matrices from ``lookup`` (the style target cache, under
    ``style_side``) when it has them."""
    features = steps_for(extractor).features(extractor, options.content_layers, options.style_layers)
    content_targets, _ = features(tf.constant(content[None]))
    lookup = lookup or StyleLookup(None, extractor, styles)
    what = ("gram", options.style_layers, str(moment_dtype(extractor, "gram")))
    stats = []
    for index, style in enumerate(styles):
        grams = lookup.get(index, style_side, what, lambda s=style: features(tf.constant(s[None]))[1])
        stats.append({name: (None, grams[name][0]) for name in options.style_layers})
    return blended_targets(content_targets, stats, options.normalized_blend(len(styles)), "gram")


def loss_weights(options: StyleOptions) -> LossWeights:
    return LossWeights(
        options.content_weight, options.style_weight, options.tv_weight, options.normalized_layer_weights()
    )


def initial_image(content: np.ndarray, style: np.ndarray, options: StyleOptions) -> np.ndarray:
    """The starting image (float32 HxWx3 in [0, 1]): the content, the first style, or seeded noise."""
    height, width = content.shape[:2]
    if options.init == "style":
        return imaging.to_float(imaging.resize(style, height, width))
    if options.init == "noise":
        return np.random.default_rng(options.seed).uniform(0.0, 1.0, (height, width, 3)).astype(np.float32)
    return imaging.to_float(content)


def _floats(parts: dict[str, tf.Tensor]) -> dict[str, float]:
    return {name: float(parts[name]) for name in LOSS_PARTS}


class _StopRequested(Exception):
    """Raised from SciPy's callback to end L-BFGS early; never leaves this module."""


@dataclass
class _Run:
    """One scale's optimiser loops: optimise(initial, first_step, steps) -> (final, steps done, stopped).

    ``targets`` are for this scale's image size, made when first used (the rung starts); ``content``
    is the full-size float content (for preserve_colors); previews and the output are upsampled to
    it. ``compiled`` holds this size's compiled steps (from the extractor's StepCache).
    """

    extractor: FeatureExtractor
    make_targets: Callable[[], Targets]  # this rung's targets, computed when the rung first needs them
    options: StyleOptions
    content: np.ndarray
    hooks: Hooks
    started: float  # time.perf_counter() when stylize() began
    compiled: Compiled
    control: controls.ControlPlan | None = None
    max_tile_pixels: int = 0
    label: str = "stylize"

    def __post_init__(self) -> None:
        self.weights = loss_weights(self.options).as_tensors()
        self.steps = TiledSteps(self.compiled, self.max_tile_pixels, self.label)  # or untiled
        self.first_loss: dict[str, float] | None = None  # loss of the first image evaluated

    @functools.cached_property
    def targets(self) -> Targets:
        return self.make_targets()

    def loss_of(self, image: np.ndarray) -> dict[str, float]:
        return _floats(self.steps.evaluate(tf.constant(image[None]), self.targets, self.weights))

    def output(self, image: np.ndarray) -> np.ndarray:
        """float HxWx3 -> the full-size uint8 image a user sees (content colours restored when asked)."""
        image = resize_float(image, *self.content.shape[:2])
        if self.control is not None:
            image = self.control.composite(image, self.content)
        if self.options.preserve_colors:
            image = imaging.transfer_luminance(image, self.content)
        return imaging.to_uint8(image)

    def report(self, step: int, parts: dict[str, float], image: Callable[[], np.ndarray]) -> None:
        if not math.isfinite(parts["total"]):
            raise EngineError(
                f"the loss became {parts['total']} at step {step}; lower the learning rate or loss weights"
            )
        hooks = self.hooks
        if hooks.on_progress is not None:
            elapsed = time.perf_counter() - self.started
            total = self.options.iterations
            hooks.on_progress(Progress(step=step, total=total, loss=parts, elapsed=elapsed))
        every = self.options.preview_every
        if hooks.on_preview is not None and every and step % every == 0:
            hooks.on_preview(step, self.output(image()))
        every = hooks.checkpoint_every
        if hooks.on_checkpoint is not None and every and step % every == 0:
            raw = resize_float(image(), *self.content.shape[:2])  # full size, before preserve_colors
            hooks.on_checkpoint(step, imaging.to_uint8(raw))

    def adam(
        self, initial: np.ndarray, first_step: int, steps: int, carried: AdamState | None = None
    ) -> tuple[np.ndarray, int, bool, AdamState]:
        """Adam from ``initial``, cold or going on from another size's ``carried`` state; returns the
        final image, the steps done, whether it was stopped, and the state for the next size."""
        options, compiled = self.options, self.compiled
        if carried is None:
            compiled.reset(initial)
        else:
            compiled.carry(initial, carried)
        hyper = AdamHyper(*(tf.constant(value, tf.float32) for value in (
            options.learning_rate, options.beta_1, ADAM_BETA_2, options.epsilon
        )))  # fmt: skip
        average = controls.Average(options.ema_decay, compiled.image)  # ema_decay 0: the image itself
        done, stopped = 0, False
        for number in range(1, steps + 1):
            if self.hooks.should_stop():
                stopped = True
                break
            targets = with_draw(self.targets, options.seed, first_step + number)  # sliced_w: fresh directions
            parts = _floats(self.steps.adam_step(targets, self.weights, hyper))
            average.update()
            if self.first_loss is None:
                self.first_loss = parts
            done = number
            self.report(first_step + number, parts, average.value)
        return average.value(), done, stopped, compiled.state()

    def lbfgs(self, initial: np.ndarray, first_step: int, steps: int) -> tuple[np.ndarray, int, bool]:
        shape = (1, *initial.shape)
        evaluate = self.steps.loss_and_gradient
        last: dict[str, dict[str, float]] = {}
        accepted = {"x": initial.astype(np.float64).ravel(), "steps": 0}

        def value_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
            image = tf.constant(flat.reshape(shape), dtype=tf.float32)
            # sliced_w: the directions of this iteration, the same through its line search
            targets = with_draw(self.targets, self.options.seed, first_step + accepted["steps"] + 1)
            parts, gradient = evaluate(image, targets, self.weights)
            last["parts"] = _floats(parts)
            if self.first_loss is None:  # SciPy evaluates the starting point first
                self.first_loss = last["parts"]
            return last["parts"]["total"], gradient.numpy().astype(np.float64).ravel()

        def on_iteration(intermediate_result: scipy.optimize.OptimizeResult) -> None:
            accepted["x"], accepted["steps"] = intermediate_result.x, accepted["steps"] + 1
            # L-BFGS-B's line search ends by evaluating the accepted point, so ``last`` is its loss.
            step = first_step + accepted["steps"]
            self.report(step, last["parts"], lambda: _as_image(accepted["x"], initial.shape))
            if self.hooks.should_stop():
                raise _StopRequested

        if self.hooks.should_stop():
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
