"""Tiled evaluation (worker/engine/tiling.py): the same loss and gradient as the whole image, by tiles.

Random weights, images of at most 250 px. Two networks: VGG19 up to block5_conv2 (the default
layers: 16-pixel grid, 96-pixel halo, so tiles of a 232 px image still overlap a lot) and VGG19 up
to block3_conv2 (4-pixel grid, 16-pixel halo), whose tiles are far smaller than the image. A tile
costs about as much to run as its pixels, halo included: the images are as small as keeps more than
one tile in each pass that is meant to be tiled.
"""

from __future__ import annotations

import dataclasses
import logging
import re

import numpy as np
import pytest
import tensorflow as tf

from spec.errors import EngineError, OptionsError
from spec.options import StyleOptions
from tests.engine.conftest import SHALLOW, gradient, noise, stripes
from tests.support.engine import stylize_arrays
from worker.engine import StyleResult, optimize, tiling
from worker.engine import control as controls
from worker.engine.images import to_float
from worker.engine.losses import outer
from worker.engine.model import FeatureExtractor
from worker.engine.objective import Targets, loss_and_gradient
from worker.engine.optimize import compute_targets, loss_weights
from worker.engine.steps import AdamHyper, Compiled, TiledSteps
from worker.engine.tiling import (
    FORWARD_TILE_FACTOR,
    Geometry,
    TiledObjective,
    geometry,
    plan_tiles,
    tiled_targets,
)

TOLERANCE = 1e-4  # relative, float32


def _targets(extractor: FeatureExtractor, options: StyleOptions, height: int, width: int) -> Targets:
    return compute_targets(
        extractor, to_float(gradient(height, width)), [to_float(stripes(96, 112))], options
    )


def _relative(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def test_the_halo_covers_vgg19s_receptive_field(
    extractor: FeatureExtractor, shallow: FeatureExtractor
) -> None:
    # block5_conv2 sees 188 px: 86 px either side of its 16 px cell, 96 on the grid.
    deep = geometry(extractor)
    assert (deep.grid, deep.halo) == (16, 96)
    assert deep.strides["block1_conv1"] == 1 and deep.strides["block5_conv1"] == 16
    assert (geometry(shallow).grid, geometry(shallow).halo) == (4, 16)


@pytest.mark.parametrize(
    ("height", "width", "budget", "grid", "halo"),
    [(256, 256, 224 * 224, 16, 96), (1000, 3000, 400_000, 16, 96), (250, 198, 48 * 48, 4, 16)],
)
def test_tiles_partition_the_image_within_the_budget(
    height: int, width: int, budget: int, grid: int, halo: int
) -> None:
    found = Geometry(grid=grid, halo=halo, strides={})
    tiles = plan_tiles(height, width, budget, found)
    covered = np.zeros((height, width), int)
    for tile in tiles:
        top, bottom, left, right = tile.interior
        covered[top:bottom, left:right] += 1
        crop_top, crop_bottom, crop_left, crop_right = tile.crop
        assert (crop_bottom - crop_top) * (crop_right - crop_left) <= budget
        # Interiors start on the grid; crops reach a halo beyond them, or stop at the image's edge.
        assert top % found.grid == 0 and left % found.grid == 0
        assert crop_top == max(0, top - found.halo) and crop_bottom == min(height, bottom + found.halo)
        assert crop_left == max(0, left - found.halo) and crop_right == min(width, right + found.halo)
    assert (covered == 1).all()
    assert len(tiles) > 1


def test_a_budget_below_one_tile_is_refused(extractor: FeatureExtractor) -> None:
    with pytest.raises(OptionsError, match="max_tile_pixels 40000 is too small.*43264 pixels"):
        plan_tiles(256, 256, 40_000, geometry(extractor))


@pytest.mark.parametrize(
    ("network", "height", "width", "budget", "tiles"),
    [
        # 2 tiles with 96 px halos; sides off the 16 px grid, so the poolings floor the sizes.
        ("deep", 120, 232, 27_000, 2),
        # Tiles of 32 + 2 x 16 px, far smaller than the image; the forward pass by 2 tiles.
        ("shallow", 144, 144, 64 * 64, 24),
        ("shallow", 250, 198, 64 * 64, 56),  # off the 4 px grid; the forward pass by 6 tiles
    ],
)
def test_tiled_loss_and_gradient_equal_the_whole_images(
    request: pytest.FixtureRequest, network: str, height: int, width: int, budget: int, tiles: int
) -> None:
    extractor = request.getfixturevalue("extractor" if network == "deep" else "shallow")
    options = StyleOptions() if network == "deep" else StyleOptions(**SHALLOW)
    targets = _targets(extractor, options, height, width)
    image = tf.constant(to_float(noise(height, width))[None])
    parts, expected = loss_and_gradient(extractor, loss_weights(options), image, targets)
    objective = TiledObjective(extractor, budget)
    tiled_parts, tiled_gradient = objective.loss_and_gradient(image, targets, loss_weights(options))
    assert len(objective.tiles(height, width)) == tiles
    for name in ("content", "style", "tv", "total"):
        assert float(tiled_parts[name]) == pytest.approx(float(parts[name]), rel=TOLERANCE)
    assert _relative(tiled_gradient.numpy(), expected.numpy()) < TOLERANCE
    only_loss = objective.evaluate(image, targets, loss_weights(options).as_tensors())
    assert float(only_loss["total"]) == pytest.approx(float(parts["total"]), rel=TOLERANCE)


@pytest.mark.parametrize("loss", ["mean_cov", "w2"])
def test_tiled_moment_losses_targets_loss_and_gradient_equal_the_whole_images(
    shallow: FeatureExtractor, loss: str
) -> None:
    """The tiled passes compose the same terms for every loss of sums over positions."""
    options = StyleOptions(**SHALLOW, style_loss=loss)
    content, style = gradient(160, 128), stripes(96, 112)
    control = controls.prepare(options, content, [style], None)

    def targets(budget: int) -> Targets:
        return optimize._targets_at(
            shallow, content, [style], options, 160, 128, 112, control=control, max_tile_pixels=budget
        )

    whole, tiled = targets(0), targets(48 * 48)
    for name, target in whole.style.items():
        assert target.mean is not None and tiled.style[name].mean is not None
        assert _relative(tiled.style[name].mean.numpy(), target.mean.numpy()) < TOLERANCE
        # The raw second moments (what tiles add up): the covariance itself cancels leading digits.
        raw = [(t.second + outer(t.mean)).numpy() for t in (tiled.style[name], target)]  # w2: + ridge
        assert _relative(*raw) < TOLERANCE
    image = tf.constant(to_float(noise(160, 128))[None])
    parts, expected = loss_and_gradient(shallow, loss_weights(options), image, whole)
    objective = TiledObjective(shallow, 64 * 64)
    tiled_parts, tiled_gradient = objective.loss_and_gradient(image, tiled, loss_weights(options))
    assert len(objective.tiles(160, 128)) > 4 and len(objective.tiles(160, 128, forward_only=True)) > 1
    for name in ("content", "style", "tv", "total"):
        assert float(tiled_parts[name]) == pytest.approx(float(parts[name]), rel=TOLERANCE)
    assert _relative(tiled_gradient.numpy(), expected.numpy()) < TOLERANCE


def test_a_halo_one_grid_cell_narrower_is_not_exact(shallow: FeatureExtractor) -> None:
    """The halo is the smallest that works: one cell less lets the tiles' zero padding leak in."""
    options = StyleOptions(**SHALLOW)
    targets = _targets(shallow, options, 122, 98)  # sides off the grid, 10 tiles
    image = tf.constant(to_float(noise(122, 98))[None])
    _, expected = loss_and_gradient(shallow, loss_weights(options), image, targets)
    errors = {}
    for halo in (16, 12):
        objective = TiledObjective(shallow, 64 * 64)
        objective.geometry = dataclasses.replace(objective.geometry, halo=halo)
        tiled_gradient = objective.loss_and_gradient(image, targets, loss_weights(options))[1]
        assert len(objective.tiles(122, 98)) > 4
        errors[halo] = _relative(tiled_gradient.numpy(), expected.numpy())
    assert errors[16] < TOLERANCE < errors[12]


def test_tiled_targets_equal_the_whole_images(shallow: FeatureExtractor) -> None:
    options = StyleOptions(**SHALLOW, style_blend=(0.3, 0.7))
    content, styles = to_float(gradient(200, 248)), [to_float(stripes(256, 176)), to_float(noise(120, 136))]
    expected = compute_targets(shallow, content, styles, options)
    tiled = tiled_targets(
        shallow,
        content,
        styles,
        options.normalized_blend(2),
        options.content_layers,
        options.style_layers,
        48 * 48,
    )
    for name, value in expected.content.items():
        assert tiled.content[name].shape == value.shape
        assert _relative(tiled.content[name].numpy(), value.numpy()) < TOLERANCE
    for name, target in expected.style.items():
        assert tiled.style[name].second.shape == target.second.shape
        assert _relative(tiled.style[name].second.numpy(), target.second.numpy()) < TOLERANCE


def test_out_of_memory_retries_with_smaller_tiles(
    shallow: FeatureExtractor, caplog: pytest.LogCaptureFixture
) -> None:
    options = StyleOptions(**SHALLOW)
    targets = _targets(shallow, options, 160, 128)
    image = tf.constant(to_float(noise(160, 128))[None])
    parts, expected = loss_and_gradient(shallow, loss_weights(options), image, targets)
    weights = loss_weights(options)
    objective = TiledObjective(shallow, 100 * 100, label="job x")
    objective.evaluate(image, targets, weights)  # compiles the tile functions
    functions = objective._functions
    assert functions is not None
    # Room for forward passes of 10000 pixels: pass 1 runs tiles of FORWARD_TILE_FACTOR x the budget.
    forward, capacity = functions.forward, [FORWARD_TILE_FACTOR * 2500]

    def small_device(crop: tf.Tensor, box: tf.Tensor) -> object:
        """A device with room for crops of at most ``capacity`` pixels: larger ones fail as on a GPU
        (this CPU-only machine cannot run out of device memory)."""
        if crop.shape[1] * crop.shape[2] > capacity[0]:
            raise tf.errors.ResourceExhaustedError(None, None, f"OOM when allocating tensor {crop.shape}")
        return forward(crop, box)

    functions.forward = small_device
    with caplog.at_level(logging.WARNING, logger="worker.engine.tiling"):
        tiled_parts, tiled_gradient = objective.loss_and_gradient(image, targets, weights)
    assert objective.max_tile_pixels == 100 * 100 // 4  # halved until the crops fit
    assert float(tiled_parts["total"]) == pytest.approx(float(parts["total"]), rel=TOLERANCE)
    assert _relative(tiled_gradient.numpy(), expected.numpy()) < TOLERANCE
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.name == "worker.engine.tiling" and record.levelno >= logging.WARNING
    ]
    assert len(warnings) == 2 and all(w.startswith("job x: out of memory with tiles of") for w in warnings)
    capacity[0] = 10  # nothing fits: an error that says so, not an endless retry
    with pytest.raises(EngineError, match="out of memory even with the smallest tiles"):
        objective.loss_and_gradient(image, targets, weights)


@pytest.mark.parametrize(("optimizer", "steps"), [("adam", 5), ("lbfgs", 2)])
def test_a_tiled_run_makes_the_untiled_runs_picture(
    shallow: FeatureExtractor, optimizer: str, steps: int
) -> None:
    options = StyleOptions(
        **SHALLOW, max_size=128, iterations=steps, optimizer=optimizer, init="noise", tv_weight=1.0
    )
    # Style and content both over the budget: 8 tiles a step (the forward pass and the targets, with
    # FORWARD_TILE_FACTOR times the budget, in one piece: the tests above tile those).
    content, style = gradient(96, 128), stripes(224, 208)

    def run(max_tile_pixels: int) -> StyleResult:
        return stylize_arrays(content, [style], options, extractor=shallow, max_tile_pixels=max_tile_pixels)

    untiled, tiled = run(0), run(64 * 64)
    assert tiled.steps == untiled.steps == steps
    assert tiled.loss_final["total"] < 0.75 * tiled.loss_initial["total"]
    assert tiled.loss_initial["total"] == pytest.approx(untiled.loss_initial["total"], rel=TOLERANCE)
    assert tiled.loss_final["total"] == pytest.approx(untiled.loss_final["total"], rel=TOLERANCE)
    difference = np.abs(tiled.image.astype(int) - untiled.image)
    if optimizer == "adam":
        assert difference.max() <= 1  # rounding to uint8 at most
    else:
        # L-BFGS's line search and bounds amplify float32 rounding (1e-7 in the gradient) from a
        # noise start: a few pixels differ by a few levels after 2 steps, more after more steps.
        # The same happens to an untiled run whose convolutions sum in another order.
        assert difference.max() <= 4 and (difference > 1).mean() < 0.01


def test_an_untiled_step_out_of_memory_goes_on_by_tiles(
    shallow: FeatureExtractor, caplog: pytest.LogCaptureFixture
) -> None:
    options = StyleOptions(**SHALLOW)
    targets, weights = _targets(shallow, options, 96, 128), loss_weights(options).as_tensors()
    hyper = AdamHyper(*(tf.constant(value, tf.float32) for value in (0.02, 0.99, 0.999, 0.1)))
    start = to_float(noise(96, 128))
    compiled = Compiled(shallow, 96, 128)
    compiled.reset(start)
    expected_parts = compiled.adam_step(targets, weights, hyper)
    expected = compiled.image.numpy()

    def out_of_memory(*arguments: object) -> None:  # a GPU without room for the whole image
        raise tf.errors.ResourceExhaustedError(
            None, None, "OOM when allocating tensor with shape[1,96,128,64]"
        )

    compiled.reset(start)
    compiled.adam_step = out_of_memory
    steps = TiledSteps(compiled, 0, label="job y")  # 0: untiled, until memory runs out
    with caplog.at_level(logging.WARNING, logger="worker.engine.steps"):
        parts = steps.adam_step(targets, weights, hyper)
    assert [record.getMessage() for record in caplog.records if record.name == "worker.engine.steps"] == [
        "job y: out of memory at 128x96 untiled (OOM when allocating tensor with shape[1,96,128,64]); "
        "retrying the step by tiles of 6144 pixels"
    ]
    assert float(parts["total"]) == pytest.approx(float(expected_parts["total"]), rel=TOLERANCE)
    np.testing.assert_allclose(compiled.image.numpy(), expected, atol=1e-5)
    assert steps.objective is not None and len(steps.objective.tiles(96, 128)) > 1


def test_targets_out_of_memory_are_computed_by_tiles(
    shallow: FeatureExtractor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    options = StyleOptions(**SHALLOW)
    content, style = gradient(160, 192), stripes(224, 208)
    expected = optimize._targets_at(shallow, content, [style], options, 160, 192, 192)

    def out_of_memory(*arguments: object) -> None:  # a GPU without room for the whole images
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    real_tiled_content, budgets = tiling.TiledTargets.content, []

    def tiled_content_that_fits_in_64_by_64(self: tiling.TiledTargets, image: object, budget: int) -> object:
        budgets.append(budget)
        if budget > 64 * 64:  # still too large: out of memory
            out_of_memory()
        return real_tiled_content(self, image, budget)  # type: ignore[arg-type]

    monkeypatch.setattr(optimize, "compute_targets", out_of_memory)
    monkeypatch.setattr(tiling.TiledTargets, "content", tiled_content_that_fits_in_64_by_64)
    with caplog.at_level(logging.WARNING, logger="worker.engine.optimize"):
        found = optimize._targets_at(shallow, content, [style], options, 160, 192, 192, label="job z")
    # The first tiles: half the largest image (the style scaled to the output's 192 px: 192 x 178),
    # then halved while they run out of memory.
    assert budgets == [192 * 178 // 2, 192 * 178 // 4, 192 * 178 // 8, 192 * 178 // 16]
    # Warnings only: an earlier test may have set the engine's loggers to INFO (its "targets for" lines).
    messages = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert messages[0].startswith("job z: out of memory computing the targets untiled (OOM when allocating")
    assert len(messages) == 4 and all(
        re.match(r"job z: out of memory with tiles of \d+ pixels computing the targets \(OOM", m)
        for m in messages[1:]
    )
    for name, target in expected.content.items():
        assert _relative(found.content[name].numpy(), target.numpy()) < TOLERANCE
    for name, target in expected.style.items():
        assert _relative(found.style[name].second.numpy(), target.second.numpy()) < TOLERANCE
