"""Control over the picture (worker/engine/control.py): masks, colours, mean_cov, EMA, average pooling.

Random weights (the session extractor), 64 px images: what is checked is what each control does to
the numbers, not art.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from spec.errors import ImageError, OptionsError
from spec.options import StyleOptions
from tests.engine.conftest import gradient, noise, stripes
from tests.support.engine import stylize_arrays
from worker.engine.control import match_colors, with_pooling
from worker.engine.model import FeatureExtractor

SIZE = 64
# The styled runs: few steps, the style weighted up so they still move the colours (measured at 10
# steps: the styled half 29 grey levels off the content, the unstyled half 0).
STYLED = {"max_size": SIZE, "iterations": 10, "style_weight": 30.0}


def _halves(height: int = SIZE, width: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Complementary masks (uint8 H x W): white on the left half, and white on the right half."""
    left = np.zeros((height, width), np.uint8)
    left[:, : width // 2] = 255
    return left, 255 - left


def _textured(colour: tuple[int, int, int], seed: int) -> np.ndarray:
    """A noisy texture around one colour (uint8 64 x 64 x 3)."""
    rng = np.random.default_rng(seed)
    return np.clip(np.array(colour) + rng.normal(0, 25, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)


def _grey_levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


@pytest.fixture(scope="module")
def styled(extractor: FeatureExtractor) -> np.ndarray:
    """The content styled everywhere (STYLED, no mask, no other control): what each control changes."""
    return stylize_arrays(gradient(), [stripes()], StyleOptions(**STYLED), extractor=extractor).image


def test_a_black_region_keeps_the_content_while_the_white_one_is_styled(
    extractor: FeatureExtractor, styled: np.ndarray
) -> None:
    content = gradient()
    styled_half, _ = _halves()
    options = StyleOptions(**STYLED)
    result = stylize_arrays(content, [stripes()], options, extractor=extractor, masks=[styled_half])
    difference = _grey_levels(result.image, content)
    assert difference[:, SIZE // 2 :].max() <= 3  # unstyled: the content, within a few grey levels
    assert difference[:, : SIZE // 2].mean() > 10  # styled: changed
    assert _grey_levels(styled, content)[:, SIZE // 2 :].mean() > 10  # the mask is what kept it


def test_complementary_masks_give_each_half_its_styles_colour(extractor: FeatureExtractor) -> None:
    grey = np.full((SIZE, SIZE, 3), 128, np.uint8)
    red, blue = _textured((210, 40, 40), seed=1), _textured((40, 60, 210), seed=2)
    left, right = _halves()
    options = StyleOptions(
        max_size=SIZE, iterations=20, style_weight=100.0, content_weight=0.0, tv_weight=0.0
    )
    image = stylize_arrays(grey, [red, blue], options, extractor=extractor, masks=[left, right]).image.astype(
        float
    )
    for half, own, other in ((image[:, : SIZE // 2], red, blue), (image[:, SIZE // 2 :], blue, red)):
        mean = half.reshape(-1, 3).mean(axis=0)
        own_mean, other_mean = own.reshape(-1, 3).mean(axis=0), other.reshape(-1, 3).mean(axis=0)
        assert np.linalg.norm(mean - own_mean) < 0.5 * np.linalg.norm(128 - own_mean)  # moved towards its own
        assert np.linalg.norm(mean - own_mean) < np.linalg.norm(mean - other_mean)


def test_a_mask_of_the_same_aspect_and_another_size_is_resized(extractor: FeatureExtractor) -> None:
    styled_half, _ = _halves(32, 32)
    options = StyleOptions(max_size=SIZE, iterations=5, style_weight=10.0)
    result = stylize_arrays(gradient(), [stripes()], options, extractor=extractor, masks=[styled_half])
    assert _grey_levels(result.image, gradient())[:, SIZE // 2 + 1 :].max() <= 3


@pytest.mark.parametrize(
    ("masks", "error", "message"),
    [
        ([np.full((SIZE, 80), 255, np.uint8)], ImageError, "aspect ratio differs"),
        ([np.zeros((SIZE, SIZE), np.uint8)], ImageError, "every mask is black"),
        ([None, None], ImageError, "2 mask(s) for 1 style image"),
    ],
)
def test_unusable_masks_are_refused(
    extractor: FeatureExtractor, masks: list, error: type[Exception], message: str
) -> None:
    options = StyleOptions(max_size=SIZE, iterations=1)
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        stylize_arrays(gradient(), [stripes()], options, extractor=extractor, masks=masks)


def test_a_style_without_a_mask_applies_everywhere(extractor: FeatureExtractor) -> None:
    options = StyleOptions(max_size=SIZE, iterations=1)
    plain = stylize_arrays(gradient(), [stripes()], options, extractor=extractor)
    masked = stylize_arrays(gradient(), [stripes()], options, extractor=extractor, masks=[None])
    np.testing.assert_allclose(masked.loss_initial["style"], plain.loss_initial["style"], rtol=1e-4)


def _channel_distance(image: np.ndarray, reference: np.ndarray) -> float:
    """Per-channel distance of the colour distributions: mean |sorted values| difference (1-D W1)."""
    a, b = image.reshape(-1, 3).astype(float), reference.reshape(-1, 3).astype(float)
    return float(np.mean(np.abs(np.sort(a, axis=0) - np.sort(b, axis=0))))


def test_histogram_colours_stay_closer_to_the_contents_than_style_colours(
    extractor: FeatureExtractor, styled: np.ndarray
) -> None:
    content = gradient()
    histogram = stylize_arrays(
        content, [stripes()], StyleOptions(**STYLED, colors="histogram"), extractor=extractor
    ).image
    assert _channel_distance(histogram, content) < 0.5 * _channel_distance(styled, content)  # 0.16 measured


def test_match_colors_gives_the_style_the_contents_mean_and_covariance() -> None:
    # A style with colours in every direction (two-colour stripes have a rank-1 covariance, which no
    # linear map can turn into the content's).
    content, style = gradient(), _textured((120, 110, 100), seed=3)
    matched = match_colors(style, content).reshape(-1, 3) / 255.0
    target = content.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(matched.mean(axis=0), target.mean(axis=0), atol=0.01)
    np.testing.assert_allclose(np.cov(matched, rowvar=False), np.cov(target, rowvar=False), atol=0.002)


def test_mean_cov_from_the_style_image_has_zero_style_loss(extractor: FeatureExtractor) -> None:
    options = StyleOptions(max_size=SIZE, iterations=1, init="style", style_loss="mean_cov")
    result = stylize_arrays(gradient(), [stripes()], options, extractor=extractor)
    from_content = stylize_arrays(
        gradient(), [stripes()], StyleOptions(max_size=SIZE, iterations=1, style_loss="mean_cov"),
        extractor=extractor,
    )  # fmt: skip
    assert from_content.loss_initial["style"] > 0
    assert result.loss_initial["style"] <= 1e-6 * from_content.loss_initial["style"]


def test_mean_cov_blends_means_and_second_moments(extractor: FeatureExtractor) -> None:
    """Two copies of one style blend into that style: zero loss from it, whatever the weights."""
    options = StyleOptions(
        max_size=SIZE, iterations=1, init="style", style_loss="mean_cov", style_blend=(0.3, 0.7)
    )
    result = stylize_arrays(gradient(), [stripes(), stripes()], options, extractor=extractor)
    assert result.loss_initial["style"] < 1e-9


def test_mean_cov_lowers_its_loss(extractor: FeatureExtractor) -> None:
    options = StyleOptions(max_size=SIZE, iterations=30, style_loss="mean_cov", init="noise", tv_weight=0)
    result = stylize_arrays(gradient(), [stripes()], options, extractor=extractor)
    assert result.loss_final["total"] < 0.5 * result.loss_initial["total"]


def _high_frequency_energy(image: np.ndarray) -> float:
    """Mean squared difference between neighbouring pixels."""
    pixels = image.astype(float)
    return float(np.mean(np.diff(pixels, axis=0) ** 2) + np.mean(np.diff(pixels, axis=1) ** 2))


def test_ema_lowers_high_frequency_energy(extractor: FeatureExtractor, styled: np.ndarray) -> None:
    averaged = stylize_arrays(
        gradient(), [stripes()], StyleOptions(**STYLED, ema_decay=0.9), extractor=extractor
    ).image
    assert _high_frequency_energy(averaged) < 0.9 * _high_frequency_energy(styled)  # 0.47 measured


def test_average_pooling_changes_the_features_not_their_shapes(extractor: FeatureExtractor) -> None:
    pooled = with_pooling(extractor, "average")
    assert with_pooling(extractor, "average") is pooled and with_pooling(extractor, "max") is extractor
    image = tf.constant(noise()[None] / 255.0, tf.float32)
    before, after = extractor(image), pooled(image)
    assert set(before) == set(after)
    for name in before:
        assert before[name].shape == after[name].shape
    np.testing.assert_allclose(after["block1_conv1"], before["block1_conv1"])  # before any pooling
    for name in ("block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"):
        assert not np.allclose(after[name], before[name])
    # Behind one pooling the factor 2 keeps the magnitude (random weights, noise: 0.96 measured);
    # deeper it compounds with random weights (3.4x at block5_conv1), which ImageNet's may not.
    ratio = float(tf.reduce_mean(after["block2_conv1"]) / tf.reduce_mean(before["block2_conv1"]))
    assert 0.8 < ratio < 1.25


def test_average_pooling_runs(extractor: FeatureExtractor) -> None:
    options = StyleOptions(max_size=SIZE, iterations=10, pooling="average", init="noise", tv_weight=0)
    result = stylize_arrays(gradient(), [stripes()], options, extractor=extractor)
    assert result.loss_final["total"] < result.loss_initial["total"]


def test_preserve_colors_is_colors_luminance() -> None:
    assert StyleOptions(preserve_colors=True).colors == "luminance"
    assert StyleOptions(colors="luminance").preserve_colors is True
    assert StyleOptions().colors == "style" and StyleOptions().preserve_colors is False
    assert StyleOptions.from_public(StyleOptions(preserve_colors=True).to_public()).colors == "luminance"
    with pytest.raises(OptionsError, match="colors=histogram"):
        StyleOptions(preserve_colors=True, colors="histogram")


def test_masks_work_with_lbfgs_and_mean_cov(extractor: FeatureExtractor) -> None:
    content = gradient()
    styled_half, _ = _halves()
    # From noise: where the mask is black the output is the content all the same.
    options = StyleOptions(
        max_size=SIZE, iterations=5, optimizer="lbfgs", style_loss="mean_cov", init="noise", tv_weight=0
    )
    result = stylize_arrays(content, [stripes()], options, extractor=extractor, masks=[styled_half])
    assert result.loss_final["total"] < result.loss_initial["total"]
    assert _grey_levels(result.image, content)[:, SIZE // 2 :].max() <= 3
    assert _grey_levels(result.image, content)[:, : SIZE // 2].mean() > 3


def test_a_masked_run_over_the_tile_budget_runs_untiled_and_makes_the_same_picture(
    extractor: FeatureExtractor,
) -> None:
    # Tiles reproduce the plain Gram loss only: a job with masks runs whole instead of failing.
    content, (styled_half, _) = gradient(), _halves()
    options = StyleOptions(max_size=SIZE, iterations=3, style_weight=10.0)
    whole = stylize_arrays(content, [stripes()], options, extractor=extractor, masks=[styled_half]).image
    budgeted = stylize_arrays(
        content, [stripes()], options, extractor=extractor, masks=[styled_half], max_tile_pixels=16 * 16
    ).image
    assert np.array_equal(whole, budgeted)
