"""The style distances of losses.py (gram, mean_cov, w2, sliced_w): their mathematics, on small maps."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from spec.options import StyleOptions
from tests.engine.conftest import gradient, stripes
from tests.support.engine import stylize_arrays
from worker.engine import losses
from worker.engine.losses import STYLE_DISTANCES, moments, sliced_loss, style_target, w2_distance
from worker.engine.model import FeatureExtractor

CHANNELS = 6


def _features(seed: int, height: int = 5, width: int = 7, channels: int = CHANNELS) -> tf.Tensor:
    """ReLU-like features (1, h, w, C), rank-deficient when h * w < C as deep layers' often are."""
    values = np.random.default_rng(seed).normal(size=(1, height, width, channels))
    return tf.constant(np.maximum(values, 0.0).astype(np.float32) * 40.0)


def _distance(loss: str, image: tf.Tensor, style: tf.Tensor) -> float:
    needs = loss in losses.NEEDS_MEANS
    target = style_target(loss, *moments(style, means=needs))
    return float(STYLE_DISTANCES[loss](*moments(image, means=needs), target)[0])


def _gaussian(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    spread = rng.normal(size=(CHANNELS, CHANNELS))
    return rng.normal(size=CHANNELS), spread @ spread.T + 0.1 * np.eye(CHANNELS)


def _w2(first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray]) -> float:
    """losses.w2_distance of two Gaussians given by their means and covariances."""
    (mean, covariance), (target_mean, target_covariance) = first, second

    def raw(mean: np.ndarray, covariance: np.ndarray) -> tf.Tensor:
        return tf.constant((covariance + np.outer(mean, mean))[None], tf.float32)

    target = style_target(
        "w2", tf.constant(target_mean[None], tf.float32), raw(target_mean, target_covariance)
    )
    return float(w2_distance(tf.constant(mean[None], tf.float32), raw(mean, covariance), target)[0])


@pytest.mark.parametrize("loss", sorted(STYLE_DISTANCES))
@pytest.mark.parametrize(("height", "width", "channels"), [(5, 7, 6), (2, 3, 16)])  # full rank, rank 6
def test_each_loss_is_zero_when_the_features_equal_the_styles(
    loss: str, height: int, width: int, channels: int
) -> None:
    style = _features(0, height, width, channels)
    other = _distance(loss, _features(1, height, width, channels), style)
    assert other > 0.0
    assert _distance(loss, style, style) == pytest.approx(0.0, abs=other * 1e-6)


def test_w2_equals_the_closed_form_computed_with_scipy() -> None:
    first, second = _gaussian(1), _gaussian(2)
    # Both covariances get the ridge of the target's mean variance (losses.W2_RIDGE).
    ridge = losses.W2_RIDGE * np.trace(second[1]) / CHANNELS * np.eye(CHANNELS)
    covariance, target = first[1] + ridge, second[1] + ridge
    target_root = scipy.linalg.sqrtm(target)
    coupling = np.trace(scipy.linalg.sqrtm(target_root @ covariance @ target_root)).real
    expected = (np.sum((first[0] - second[0]) ** 2) + np.trace(covariance + target) - 2 * coupling) / CHANNELS
    assert _w2(first, second) == pytest.approx(expected, rel=1e-4)


def test_w2_is_symmetric(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(losses, "W2_RIDGE", 0.0)  # the ridge is the target's: without it, symmetric
    first, second = _gaussian(3), _gaussian(4)
    assert _w2(first, second) == pytest.approx(_w2(second, first), rel=1e-4)


def test_w2_of_two_known_gaussians(monkeypatch: pytest.MonkeyPatch) -> None:
    """Diagonal covariances: W2^2 = |mu_1 - mu_2|^2 + sum (sigma_1 - sigma_2)^2, here 9 + 1 over 2."""
    monkeypatch.setattr(losses, "W2_RIDGE", 0.0)
    first = (np.zeros(2), np.diag([1.0, 1.0]))
    second = (np.array([3.0, 0.0]), np.diag([4.0, 1.0]))  # sigma 2 and 1
    assert _w2(first, second) == pytest.approx(5.0, rel=1e-5)


def test_w2_gradient_is_finite_for_singular_covariances() -> None:
    """Deep layers of small images have fewer positions than channels: singular covariances."""
    style, image = _features(0, 2, 3, 16), tf.Variable(_features(1, 2, 3, 16))
    target = style_target("w2", *moments(style, means=True))
    with tf.GradientTape() as tape:
        distance = w2_distance(*moments(image, means=True), target)
    assert np.isfinite(tape.gradient(distance, image).numpy()).all()


def test_w2_runs_lower_their_loss_and_reproduce_with_masks_too(extractor: FeatureExtractor) -> None:
    options = StyleOptions(max_size=32, iterations=4, style_loss="w2", style_weight=10.0)
    content, style = gradient(32, 32), stripes(32, 32)
    first = stylize_arrays(content, [style], options, extractor=extractor)
    again = stylize_arrays(content, [style], options, extractor=extractor)
    assert first.loss_final["style"] < first.loss_initial["style"]
    np.testing.assert_array_equal(first.image, again.image)
    mask = np.zeros((32, 32), np.uint8)
    mask[:, :16] = 255
    masked = stylize_arrays(content, [style], options, extractor=extractor, masks=[mask])
    assert masked.loss_final["style"] < masked.loss_initial["style"]


def _sliced(image: tf.Tensor, styles: list[tf.Tensor], draw: tuple[int, int] = (0, 1)) -> tf.Tensor:
    samples = {"layer": tuple(tf.reshape(style, (-1, style.shape[-1])) for style in styles)}
    blend = tf.fill((len(styles),), 1.0 / len(styles))
    return sliced_loss({"layer": image}, samples, blend, [1.0], tf.constant(draw, tf.int64))


def test_sliced_w_is_zero_for_the_styles_own_features_and_reproduces_with_a_seed() -> None:
    style, image = _features(0, 6, 5, 8), _features(1, 6, 5, 8)
    assert float(_sliced(style, [style])) == 0.0
    first, again, other = (float(_sliced(image, [style], draw)) for draw in [(7, 3), (7, 3), (7, 4)])
    assert first > 0.0 and first == again and other != first  # fresh directions each step, seeded


def test_sliced_w_along_one_direction_is_the_1d_wasserstein_distance() -> None:
    """One channel: the only direction is +-1, and the sorted samples pair up as the 1-D optimal
    transport does: W2^2 = mean((sort x - sort y)^2); with another pixel count, by quantiles."""
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(1, 8, 8, 1)), rng.exponential(size=(1, 8, 8, 1))
    expected = np.mean((np.sort(x.ravel()) - np.sort(y.ravel())) ** 2)
    found = float(_sliced(tf.constant(x, tf.float32), [tf.constant(y, tf.float32)]))
    assert found == pytest.approx(expected, rel=1e-5)
    doubled = np.repeat(y, 2, axis=1)  # the same distribution in twice the pixels
    assert float(_sliced(tf.constant(x, tf.float32), [tf.constant(doubled, tf.float32)])) == pytest.approx(
        expected, rel=0.05
    )


def test_sliced_w_moves_a_distribution_to_its_target_where_gram_cannot() -> None:
    """Signs +-1 and a Gaussian of the same variance: equal Gram matrices, other shapes. The Gram
    loss is already 0 (no gradient); descending sliced_w makes the features two-valued."""
    rng = np.random.default_rng(6)
    signs = rng.choice([-1.0, 1.0], size=(256, 2))
    normal = rng.normal(size=(256, 2))
    # The Gaussian samples mapped to the signs' Gram matrix exactly: X L_x^-T L_t^T.
    gram_of = lambda values: np.linalg.cholesky(values.T @ values)  # noqa: E731
    start = normal @ np.linalg.inv(gram_of(normal)).T @ gram_of(signs).T
    target = tf.constant(signs.reshape(1, 16, 16, 2), tf.float32)
    image = tf.Variable(start.reshape(1, 16, 16, 2).astype(np.float32))
    assert _distance("gram", image, target) == pytest.approx(0.0, abs=1e-9)

    def shape_error() -> float:  # 1-D W2^2 per channel, against the +-1 marginals
        values = np.sort(image.numpy().reshape(-1, 2), axis=0)
        return float(np.mean((values - np.sort(target.numpy().reshape(-1, 2), axis=0)) ** 2))

    before = shape_error()
    for step in range(60):
        with tf.GradientTape() as tape:
            loss = _sliced(image, [target], (0, step))
        image.assign_sub(0.5 * image.shape[1] * image.shape[2] * tape.gradient(loss, image) / 2)
    assert shape_error() < 0.2 * before


def test_sliced_w_runs_lower_their_loss_and_reproduce(extractor: FeatureExtractor) -> None:
    # A style weight where the style term leads: with 16 directions per step (SLICED_DIRECTIONS) the
    # content and TV terms at weight 10 raise the loss along the first draw's directions at 32 px.
    options = StyleOptions(max_size=32, iterations=4, style_loss="sliced_w", style_weight=1e5)
    content, style = gradient(32, 32), stripes(40, 40)  # other pixel counts: resampled quantiles
    first = stylize_arrays(content, [style], options, extractor=extractor)
    again = stylize_arrays(content, [style], options, extractor=extractor)
    assert first.loss_final["style"] < first.loss_initial["style"]
    np.testing.assert_array_equal(first.image, again.image)


def test_w2_coupling_gradient_equals_finite_differences() -> None:
    """The written-out gradient of tr((R C R)^1/2) (losses.coupling) against central differences in
    float64, along random symmetric directions, for a full-rank and a rank-deficient covariance."""
    rng = np.random.default_rng(7)
    target = _gaussian(8)[1]
    root = tf.constant(scipy.linalg.sqrtm(target).real[None])
    for rank in (CHANNELS, 2):
        spread = rng.normal(size=(CHANNELS, rank))
        covariance = tf.constant((spread @ spread.T + 0.05 * np.eye(CHANNELS))[None])
        with tf.GradientTape() as tape:
            tape.watch(covariance)
            value = losses.coupling(covariance, root)
        found = tape.gradient(value, covariance).numpy()[0]
        for _ in range(3):
            direction = rng.normal(size=(CHANNELS, CHANNELS))
            direction = tf.constant((direction + direction.T)[None])
            step = 1e-5
            expected = (
                float(losses.coupling(covariance + step * direction, root)[0])
                - float(losses.coupling(covariance - step * direction, root)[0])
            ) / (2 * step)
            assert np.sum(found * direction.numpy()[0]) == pytest.approx(expected, rel=1e-6)


def test_sliced_w_sorts_once_and_its_gradient_is_tf_sorts() -> None:
    """losses.sorted_projections (argsort once, the gradient through a gather) gives tf.sort's values
    and tf.sort's gradient."""
    values = tf.constant(_features(2, 6, 5, 8).numpy().reshape(-1, 8))
    directions = losses.random_directions(tf.constant([3, 4], tf.int64), 8, 5)
    target = tf.constant(np.sort(np.random.default_rng(9).normal(size=(5, 30)), axis=-1), tf.float32)
    gradients = []
    for sort in (
        lambda v: losses.sorted_projections(v, directions),
        lambda v: tf.transpose(tf.sort(v @ directions, axis=0)),
    ):
        with tf.GradientTape() as tape:
            tape.watch(values)
            loss = tf.reduce_mean(tf.square(sort(values) - target))
        gradients.append((float(loss), tape.gradient(loss, values).numpy()))
    assert gradients[0][0] == pytest.approx(gradients[1][0], rel=1e-6)
    np.testing.assert_allclose(gradients[0][1], gradients[1][1], rtol=1e-5, atol=1e-7)


def test_sliced_w_with_fewer_directions_estimates_the_same_distance(monkeypatch: pytest.MonkeyPatch) -> None:
    """SLICED_DIRECTIONS fresh directions per step, fewer than the channels: over many steps' draws
    the same distance on average as with one direction per channel (Heitz et al.'s estimator)."""
    style, image = _features(0, 8, 8, 16), _features(1, 8, 8, 16)
    monkeypatch.setattr(losses, "SLICED_DIRECTIONS", 0)  # one per channel
    assert losses.sliced_directions(16) == 16
    full = np.mean([float(_sliced(image, [style], (0, step))) for step in range(40)])
    monkeypatch.setattr(losses, "SLICED_DIRECTIONS", 4)
    assert losses.sliced_directions(16) == 4 and losses.sliced_directions(2) == 2
    few = [float(_sliced(image, [style], (0, step))) for step in range(160)]
    assert np.mean(few) == pytest.approx(full, rel=0.05)
    assert float(_sliced(style, [style])) == 0.0


def test_sliced_w_takes_a_fixed_subsample_of_a_larger_styles_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    """SLICED_STYLE_PIXELS: a style with more pixels is kept as a fixed random subset of that many
    (the same each time); its loss is within a few percent of the whole style's; a style within the
    bound is kept whole (so the style's own features still give 0)."""
    rng = np.random.default_rng(10)
    style = tf.constant(rng.gamma(2.0, size=(1, 64, 64, 4)).astype(np.float32))
    image = _features(3, 16, 16, 4)
    values = tf.reshape(style, (-1, 4))
    whole = float(_sliced(image, [style]))
    monkeypatch.setattr(losses, "SLICED_STYLE_PIXELS", 1024)
    kept = losses.style_sample(values)
    assert kept.shape == (1024, 4)
    np.testing.assert_array_equal(kept.numpy(), losses.style_sample(values).numpy())
    samples = {"layer": (kept,)}
    found = float(sliced_loss({"layer": image}, samples, tf.ones((1,)), [1.0], tf.constant((0, 1), tf.int64)))
    assert found == pytest.approx(whole, rel=0.05)
    small = tf.reshape(image, (-1, 4))
    assert losses.style_sample(small) is small
