"""Fixtures for the engine tests: seeded random-weights extractors shared by the session, tiny
generated images.

The session's extractors keep the compiled steps of every image size the tests use (a few dozen,
all small): a size's first step traces its graphs (about a second of CPU), so a test reuses what an
earlier one of any module compiled instead of tracing it again after the default bound of 4 sizes
dropped it. Tests of tracing and the step cache's bound build extractors of their own.
"""

from __future__ import annotations

import numpy as np
import pytest

from worker.engine.model import FeatureExtractor, load_extractor

WEIGHTS_SEED = 0
STEP_CACHE_SIZE = 64  # sizes kept per session extractor: more than the tests use (see above)
# VGG19 up to block3_conv2: a 4-pixel grid and a 16-pixel halo, so tiles far smaller than the image
# stay exact (tests/engine/test_tiling.py), and cheaper steps than the default layers'.
SHALLOW = {
    "content_layers": ("block3_conv2",),
    "style_layers": ("block1_conv1", "block2_conv1", "block3_conv1"),
}


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
    """The default layers, float32."""
    return load_extractor("random", seed=WEIGHTS_SEED, step_cache_size=STEP_CACHE_SIZE)


@pytest.fixture(scope="session")
def shallow() -> FeatureExtractor:
    """SHALLOW's layers, float32: the tiling tests' network."""
    return load_extractor("random", seed=WEIGHTS_SEED, step_cache_size=STEP_CACHE_SIZE, **SHALLOW)


@pytest.fixture(scope="session")
def mixed() -> FeatureExtractor:
    """The default layers in mixed bfloat16, the same weights as ``extractor``."""
    return load_extractor(
        "random", seed=WEIGHTS_SEED, precision="mixed_bfloat16", step_cache_size=STEP_CACHE_SIZE
    )
