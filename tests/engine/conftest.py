"""Fixtures for the engine tests: one seeded random-weights extractor per session, tiny generated images."""

from __future__ import annotations

import numpy as np
import pytest

from worker.engine.model import FeatureExtractor, load_extractor

WEIGHTS_SEED = 0


def gradient(height: int = 64, width: int = 64) -> np.ndarray:
    """A smooth, moderately saturated colour gradient (uint8 HxWx3): the content image of the tests."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.stack([0.25 + 0.5 * x, 0.25 + 0.5 * y, 0.6 - 0.3 * x * y], axis=-1)
    return np.rint(image * 255).astype(np.uint8)


def stripes(height: int = 64, width: int = 64, period: int = 8) -> np.ndarray:
    """Diagonal red/blue stripes (uint8 HxWx3): a style image with strong texture and colour."""
    y, x = np.mgrid[0:height, 0:width]
    on = ((x + y) // (period // 2)) % 2 == 0
    image = np.where(on[..., None], np.array([220, 40, 30]), np.array([20, 60, 200]))
    return image.astype(np.uint8)


def noise(height: int = 64, width: int = 64, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="session")
def extractor() -> FeatureExtractor:
    return load_extractor("random", seed=WEIGHTS_SEED)
