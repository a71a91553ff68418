"""The speed options: mixed precision, XLA and the coarse-to-fine schedule keep the method's results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spec.errors import OptionsError
from spec.options import StyleOptions
from tests.engine.conftest import SHALLOW, WEIGHTS_SEED, gradient, stripes
from tests.support.engine import stylize_arrays
from worker.engine import Progress
from worker.engine.model import FeatureExtractor, load_extractor

# As in test_optimize: from noise without total variation, so the loss has room to fall.
FROM_NOISE = StyleOptions(max_size=64, init="noise", tv_weight=0.0, iterations=10)


def _options(**changes: object) -> StyleOptions:
    return StyleOptions(**{**FROM_NOISE.__dict__, **changes})


def test_bfloat16_losses_are_close_to_float32_and_still_fall(
    extractor: FeatureExtractor, mixed: FeatureExtractor
) -> None:
    """The small version of bench/precision.py: 64 px, from noise, the loss before every step."""
    assert (extractor.precision, mixed.precision) == ("float32", "mixed_bfloat16")
    curves: dict[str, list[float]] = {"float32": [], "bf16": []}
    exact, fast = (
        stylize_arrays(
            gradient(),
            [stripes()],
            FROM_NOISE,
            extractor=used,
            on_progress=lambda progress, curve=curves[name]: curve.append(progress.loss["total"]),
        )  # fmt: skip
        for name, used in (("float32", extractor), ("bf16", mixed))
    )
    # bfloat16 keeps 8 bits of mantissa: ~0.4% per value; the sums measured 0.2% apart at most.
    assert len(curves["float32"]) == len(curves["bf16"]) == FROM_NOISE.iterations
    for exact_loss, fast_loss in zip(curves["float32"], curves["bf16"], strict=True):
        assert fast_loss == pytest.approx(exact_loss, rel=0.01)
    for name in ("total", "content", "style"):
        assert fast.loss_initial[name] == pytest.approx(exact.loss_initial[name], rel=0.02)
        assert fast.loss_final[name] == pytest.approx(exact.loss_final[name], rel=0.05)
    assert fast.loss_final["total"] < 0.8 * fast.loss_initial["total"]
    difference = exact.image.astype(float) - fast.image.astype(float)
    psnr = 10 * np.log10(255**2 / max(np.mean(difference**2), 1e-12))
    assert psnr > 35  # 45 dB measured


def test_mixed_extractor_returns_float32_features(mixed: FeatureExtractor) -> None:
    features = mixed(np.full((1, 32, 32, 3), 0.5, np.float32))
    assert {str(tensor.dtype) for tensor in features.values()} == {"<dtype: 'float32'>"}


def test_xla_gives_the_same_losses_as_without() -> None:
    # The shallow network: XLA compiles a graph the size of the network's, whatever the image size.
    options = _options(iterations=3, max_size=32, **SHALLOW)
    plain = load_extractor("random", seed=WEIGHTS_SEED, jit_compile=False, **SHALLOW)
    compiled = load_extractor("random", seed=WEIGHTS_SEED, jit_compile=True, **SHALLOW)
    assert (plain.jit_compile, compiled.jit_compile) == (False, True)
    without = stylize_arrays(gradient(), [stripes()], options, extractor=plain)
    with_xla = stylize_arrays(gradient(), [stripes()], options, extractor=compiled)
    assert with_xla.loss_initial["total"] == pytest.approx(without.loss_initial["total"], rel=1e-5)
    assert with_xla.loss_final["total"] == pytest.approx(without.loss_final["total"], rel=1e-3)


def test_jit_compile_auto_is_off_without_a_gpu() -> None:
    import tensorflow as tf

    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    layers = ("block1_conv1",)  # the smallest network: only its flag is looked at
    auto = load_extractor("random", seed=WEIGHTS_SEED, content_layers=layers, style_layers=layers)
    assert auto.jit_compile is has_gpu


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(OptionsError, match="precision must be one of"):
        load_extractor("random", precision="float8")


def test_multiscale_gives_a_full_size_image_and_counts_every_step(extractor: FeatureExtractor) -> None:
    seen: list[Progress] = []
    previews: list[tuple[int, tuple[int, ...]]] = []
    result = stylize_arrays(
        gradient(64, 48), [stripes()], _options(iterations=12, scales=(0.25, 0.5, 1.0), preview_every=4),
        extractor=extractor, on_progress=seen.append,
        on_preview=lambda step, image: previews.append((step, image.shape)),
    )  # fmt: skip
    assert result.image.shape == (64, 48, 3) and result.image.dtype == np.uint8
    assert (result.steps, result.stopped) == (12, False)
    assert [p.step for p in seen] == list(range(1, 13)) and {p.total for p in seen} == {12}
    assert previews == [(4, (64, 48, 3)), (8, (64, 48, 3)), (12, (64, 48, 3))]  # upsampled to full size
    assert result.loss_final["total"] < 0.5 * result.loss_initial["total"]  # both measured at full size


def test_multiscale_stop_returns_a_full_size_image(extractor: FeatureExtractor) -> None:
    steps: list[int] = []
    result = stylize_arrays(
        gradient(), [stripes()], _options(iterations=30, scales=(0.5, 1.0)), extractor=extractor,
        on_progress=lambda progress: steps.append(progress.step), should_stop=lambda: len(steps) >= 4,
    )  # fmt: skip
    assert (result.steps, result.stopped, result.image.shape) == (4, True, (64, 64, 3))


def test_multiscale_with_lbfgs_lowers_the_loss(extractor: FeatureExtractor) -> None:
    options = _options(iterations=8, optimizer="lbfgs", scales=(0.5, 1.0))
    result = stylize_arrays(gradient(), [stripes()], options, extractor=extractor)
    assert result.image.shape == (64, 64, 3) and 1 <= result.steps <= 8
    assert result.loss_final["total"] < 0.5 * result.loss_initial["total"]


@pytest.mark.parametrize("scales", [(), (0.5,), (1.0, 0.5), (0.5, 0.5, 1.0), (0.0, 1.0), (0.5, 2.0)])
def test_bad_scales_are_refused(scales: tuple[float, ...]) -> None:
    with pytest.raises(OptionsError, match="^scales (must|needs)"):
        StyleOptions(scales=scales)


def test_cli_takes_scales_and_precision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from worker.cli import main
    from worker.engine.images import save_image

    content, style, out = tmp_path / "c.png", tmp_path / "s.png", tmp_path / "out.png"
    save_image(gradient(48, 48), content)
    save_image(stripes(48, 48), style)
    argv = [
        "stylize", str(content), str(style), "-o", str(out), "--size", "48", "--iterations", "3",
        "--weights", "random", "--scales", "0.5,1", "--precision", "mixed_bfloat16", "--xla", "off", "--json",
    ]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["width"], summary["height"], summary["iterations"]) == (48, 48, 3)
