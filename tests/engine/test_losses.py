"""The loss terms, against NumPy references and their defining zeros."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from spec.options import StyleOptions
from tests.engine.conftest import gradient, noise, stripes
from worker.engine.images import to_float
from worker.engine.losses import gram_matrix, total_variation_loss
from worker.engine.model import FeatureExtractor
from worker.engine.objective import loss_parts
from worker.engine.optimize import compute_targets, loss_weights


def _parts(extractor: FeatureExtractor, image: np.ndarray, content: np.ndarray, style: np.ndarray) -> dict:
    options = StyleOptions()
    targets = compute_targets(extractor, to_float(content), [to_float(style)], options)
    parts = loss_parts(extractor, loss_weights(options), tf.constant(to_float(image)[None]), targets)
    return {name: float(value) for name, value in parts.items()}


def test_gram_matrix_matches_numpy() -> None:
    features = np.random.default_rng(0).normal(size=(1, 5, 7, 3)).astype(np.float32)
    flat = features.reshape(-1, 3)
    expected = flat.T @ flat / (5 * 7)
    np.testing.assert_allclose(gram_matrix(tf.constant(features))[0], expected, rtol=1e-5)


def test_content_loss_of_the_content_image_is_zero(extractor: FeatureExtractor) -> None:
    content = gradient()
    assert _parts(extractor, content, content, stripes())["content"] == 0.0
    assert _parts(extractor, noise(), content, stripes())["content"] > 0.0


def test_style_loss_of_the_style_image_itself_is_zero(extractor: FeatureExtractor) -> None:
    style = stripes()
    other = _parts(extractor, noise(), gradient(), style)["style"]
    itself = _parts(extractor, style, gradient(), style)["style"]
    assert other > 0.0
    assert itself == pytest.approx(0.0, abs=other * 1e-9)


def test_total_variation_sums_neighbour_differences() -> None:
    image = np.zeros((1, 2, 3, 1), dtype=np.float32)
    image[0, 0, 1, 0] = 1.0  # one bright pixel: 2 horizontal + 1 vertical neighbour differences
    assert float(total_variation_loss(tf.constant(image))) == pytest.approx(3.0)
