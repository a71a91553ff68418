"""The style distances of losses.py (gram, mean_cov, w2): their mathematics, on small feature maps."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from spec.options import StyleOptions
from tests.engine.conftest import gradient, stripes
from tests.support.engine import stylize_arrays
from worker.engine import losses
from worker.engine.losses import STYLE_DISTANCES, moments, style_target, w2_distance
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
