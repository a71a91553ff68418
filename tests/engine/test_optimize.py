"""stylize_arrays(): the loss goes down, runs are reproducible, callbacks and options do what they say."""

from __future__ import annotations

import numpy as np
import pytest

from spec.errors import EngineError, ImageError, OptionsError
from spec.options import StyleOptions
from tests.engine.conftest import gradient, noise, stripes
from tests.support.engine import stylize_arrays
from worker.engine import Progress
from worker.engine.images import rgb_to_ycbcr, to_float
from worker.engine.model import FeatureExtractor, load_extractor

# Random weights make the content term dominate from the content image, so start from noise and leave
# total variation out: what is measured is the optimiser reducing the objective.
FROM_NOISE = StyleOptions(max_size=64, init="noise", tv_weight=0.0)


def _options(**changes: object) -> StyleOptions:
    return StyleOptions(**{**FROM_NOISE.__dict__, **changes})


def test_adam_halves_the_loss_in_30_steps(extractor: FeatureExtractor) -> None:
    seen: list[Progress] = []
    result = stylize_arrays(
        gradient(), [stripes()], _options(iterations=30), extractor=extractor, on_progress=seen.append
    )
    assert result.loss_final["total"] < 0.5 * result.loss_initial["total"]
    assert (result.steps, result.stopped) == (30, False)
    assert result.image.shape == (64, 64, 3) and result.image.dtype == np.uint8
    assert [p.step for p in seen] == list(range(1, 31))
    assert all(p.total == 30 and set(p.loss) == {"total", "content", "style", "tv"} for p in seen)
    assert all(a.elapsed <= b.elapsed for a, b in zip(seen, seen[1:], strict=False))
    assert seen[-1].loss["total"] < seen[0].loss["total"]


def test_same_seed_gives_the_same_image(extractor: FeatureExtractor) -> None:
    def run(seed: int) -> np.ndarray:
        return stylize_arrays(
            gradient(), [stripes()], _options(iterations=8, seed=seed), extractor=extractor
        ).image

    first = run(5)
    np.testing.assert_array_equal(run(5), first)
    assert not np.array_equal(run(6), first)


def test_lbfgs_lowers_the_loss(extractor: FeatureExtractor) -> None:
    steps: list[int] = []
    result = stylize_arrays(
        gradient(), [stripes()], _options(iterations=10, optimizer="lbfgs"), extractor=extractor,
        on_progress=lambda progress: steps.append(progress.step),
    )  # fmt: skip
    assert result.loss_final["total"] < 0.5 * result.loss_initial["total"]
    assert steps == list(range(1, result.steps + 1)) and result.steps >= 5
    assert result.image.min() >= 0 and result.image.shape == (64, 64, 3)


def _chroma_error(image: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Per-pixel |Cb, Cr| difference in 0..255 units."""
    return np.abs(rgb_to_ycbcr(to_float(image))[..., 1:] - rgb_to_ycbcr(to_float(content))[..., 1:]) * 255


def test_preserve_colors_keeps_the_content_chroma(extractor: FeatureExtractor) -> None:
    content = gradient()
    kept = stylize_arrays(
        content, [stripes()], _options(iterations=10, preserve_colors=True), extractor=extractor
    )
    free = stylize_arrays(content, [stripes()], _options(iterations=10), extractor=extractor)
    # Where the optimised luminance is near black or white, RGB clipping bends a few pixels' chroma.
    assert _chroma_error(kept.image, content).mean() < 0.5
    assert np.percentile(_chroma_error(kept.image, content), 95) < 1.0
    assert _chroma_error(free.image, content).mean() > 10.0  # without it, the colours do change
    # Only colour is taken from the content: the luminance is the optimised image's.
    luminance_change = np.abs(
        rgb_to_ycbcr(to_float(kept.image))[..., 0] - rgb_to_ycbcr(to_float(free.image))[..., 0]
    )
    assert np.percentile(luminance_change, 95) < 2 / 255


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_should_stop_ends_the_run_within_one_step(extractor: FeatureExtractor, optimizer: str) -> None:
    steps: list[int] = []
    result = stylize_arrays(
        gradient(), [stripes()], _options(iterations=50, optimizer=optimizer), extractor=extractor,
        on_progress=lambda progress: steps.append(progress.step), should_stop=lambda: len(steps) >= 3,
    )  # fmt: skip
    assert result.stopped
    assert result.steps == 3 and steps == [1, 2, 3]
    assert result.image.shape == (64, 64, 3)
    assert result.loss_final["total"] < result.loss_initial["total"]  # the partial work is kept


def test_should_stop_before_the_first_step_returns_the_start(extractor: FeatureExtractor) -> None:
    result = stylize_arrays(
        gradient(), [stripes()], StyleOptions(max_size=64, iterations=5), extractor=extractor,
        should_stop=lambda: True,
    )  # fmt: skip
    assert (result.stopped, result.steps) == (True, 0)
    np.testing.assert_array_equal(result.image, gradient())


def test_previews_arrive_every_preview_every_steps(extractor: FeatureExtractor) -> None:
    previews: list[tuple[int, np.ndarray]] = []
    result = stylize_arrays(
        gradient(), [stripes()], _options(iterations=9, preview_every=4), extractor=extractor,
        on_preview=lambda step, image: previews.append((step, image)),
    )  # fmt: skip
    assert [step for step, _ in previews] == [4, 8]
    assert all(image.shape == (64, 64, 3) and image.dtype == np.uint8 for _, image in previews)
    assert not np.array_equal(previews[0][1], previews[1][1])
    assert not np.array_equal(previews[1][1], result.image)


def test_style_blend_weights_the_style_images(extractor: FeatureExtractor) -> None:
    # Style only, and weighted up: with random weights the default style term barely moves the image.
    options = _options(iterations=5, content_weight=0.0, style_weight=1.0)

    def run(styles: list[np.ndarray], blend: tuple[float, ...] | None) -> np.ndarray:
        blended = StyleOptions(**{**options.__dict__, "style_blend": blend})
        return stylize_arrays(gradient(), styles, blended, extractor=extractor).image.astype(int)

    stripes_only = run([stripes()], None)
    np.testing.assert_allclose(run([stripes(), noise()], (2.0, 0.0)), stripes_only, atol=1)
    assert np.abs(run([stripes(), noise()], (1.0, 1.0)) - stripes_only).mean() > 1.0


def test_init_chooses_the_starting_image(extractor: FeatureExtractor) -> None:
    def initial_loss(init: str) -> dict[str, float]:
        options = StyleOptions(max_size=64, iterations=1, init=init)
        return stylize_arrays(gradient(), [stripes()], options, extractor=extractor).loss_initial

    assert initial_loss("content")["content"] == 0.0
    from_style = initial_loss("style")
    assert from_style["style"] < 1e-6 * initial_loss("content")["style"]
    assert from_style["content"] > 0.0


def test_content_is_scaled_down_to_max_size(extractor: FeatureExtractor) -> None:
    # To 64 x 48: the ladder's and the multiscale tests' output, whose steps the session keeps.
    result = stylize_arrays(
        gradient(128, 96), [stripes()], StyleOptions(max_size=64, iterations=1), extractor=extractor
    )
    assert result.image.shape == (64, 48, 3)


def test_too_elongated_content_is_refused(extractor: FeatureExtractor) -> None:
    with pytest.raises(ImageError, match="at least 16 pixels"):
        stylize_arrays(
            gradient(16, 256), [stripes()], StyleOptions(max_size=64, iterations=1), extractor=extractor
        )


def test_bad_options_are_refused(extractor: FeatureExtractor) -> None:
    for bad in (
        {"iterations": 0},
        {"optimizer": "sgd"},
        {"tv_weight": -1.0},
        {"init": "blank"},
        {"max_size": 8},
    ):
        with pytest.raises(OptionsError):
            StyleOptions(**bad)
    with pytest.raises(OptionsError, match="style_layer_weights"):
        StyleOptions(style_layer_weights=(1.0, 2.0))
    with pytest.raises(OptionsError, match="style_blend: has 2 weights but 1 style"):
        stylize_arrays(gradient(), [stripes()], StyleOptions(style_blend=(1.0, 1.0)), extractor=extractor)
    with pytest.raises(ImageError, match="uint8 HxWx3"):
        stylize_arrays(to_float(gradient()), [stripes()], StyleOptions(), extractor=extractor)


def test_extractor_must_provide_the_option_layers() -> None:
    shallow = load_extractor("random", content_layers=("block2_conv1",), style_layers=("block1_conv1",))
    with pytest.raises(OptionsError, match="built without layer"):
        stylize_arrays(gradient(), [stripes()], StyleOptions(), extractor=shallow)


def test_style_scale_resizes_the_style_images(extractor: FeatureExtractor) -> None:
    def initial_style_loss(style_scale: float) -> float:
        options = StyleOptions(max_size=64, iterations=1, init="style", style_scale=style_scale)
        return stylize_arrays(gradient(), [stripes()], options, extractor=extractor).loss_initial["style"]

    same_size = initial_style_loss(1.0)  # the start image is the style image at its own scale
    assert initial_style_loss(0.5) > 1000 * max(same_size, 1e-12)


def test_a_diverging_run_is_reported(extractor: FeatureExtractor) -> None:
    options = StyleOptions(max_size=32, iterations=3, content_weight=1e38, style_weight=1e38)
    with pytest.raises(EngineError, match="loss became inf at step 1"):
        stylize_arrays(gradient(32, 32), [stripes(32, 32)], options, extractor=extractor)
