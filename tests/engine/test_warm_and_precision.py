"""Fast by default: precision "auto", lean extractors, and compiled steps reused across runs.

How closely bfloat16 follows float32 is in test_speed_options.py. The tests of reuse build
extractors of their own, of shallow layers (cheaper to trace): whether a run found its steps compiled
depends on what ran before it on that extractor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from spec.options import StyleOptions
from tests.engine.conftest import WEIGHTS_SEED, gradient, stripes
from tests.support.engine import stylize_arrays
from worker.engine import model as model_module
from worker.engine.model import (
    FeatureExtractor,
    cpu_description,
    cpu_flags,
    cpu_prefers_bfloat16,
    load_extractor,
    resolve_precision,
)
from worker.engine.steps import StepCache, steps_for

TINY = StyleOptions(max_size=32, iterations=4, init="noise", tv_weight=0.0)


def _options(**changes: object) -> StyleOptions:
    return StyleOptions(**{**TINY.__dict__, **changes})


def test_cpu_flags_and_vendor_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: Some CPU\n"
        "flags\t\t: fpu avx2 amx_bf16 avx512_bf16\n\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\n"
    )
    assert cpu_description(cpuinfo) == ({"fpu", "avx2", "amx_bf16", "avx512_bf16"}, "AuthenticAMD")
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "amx_bf16", "avx512_bf16"}
    assert cpu_description(tmp_path / "missing") == (set(), "")


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="a GPU decides by its capability")
@pytest.mark.parametrize(
    ("flags", "vendor", "expected"),
    [
        ({"avx2", "avx512f"}, "AuthenticAMD", "float32"),
        ({"avx512_bf16"}, "AuthenticAMD", "mixed_bfloat16"),  # Zen 4/5: bfloat16 faster (measured)
        ({"avx512_bf16"}, "GenuineIntel", "float32"),  # a Xeon without AMX: bfloat16 slower (measured)
        ({"avx512_bf16", "amx_bf16"}, "GenuineIntel", "mixed_bfloat16"),
    ],
)
def test_auto_picks_bfloat16_only_on_cpus_that_compute_it_faster(
    monkeypatch: pytest.MonkeyPatch, flags: set[str], vendor: str, expected: str
) -> None:
    monkeypatch.setattr(model_module, "cpu_description", lambda: (flags, vendor))
    assert resolve_precision("auto") == expected
    assert resolve_precision("float32") == "float32"  # an explicit choice is kept


def test_auto_extractor_uses_this_machines_choice() -> None:
    auto = load_extractor("random", seed=WEIGHTS_SEED, precision="auto", style_layers=("block1_conv1",))
    if not tf.config.list_physical_devices("GPU"):
        prefers = cpu_prefers_bfloat16(*cpu_description())
        assert auto.precision == ("mixed_bfloat16" if prefers else "float32")


def test_bfloat16_extractor_holds_only_bfloat16_weights_of_the_layers_used(
    mixed: FeatureExtractor, extractor: FeatureExtractor
) -> None:
    names = {layer.name for layer in mixed.model.layers}
    assert "block5_conv2" in names and not {"block5_conv3", "block5_conv4", "block5_pool"} & names
    dtypes = {layer.name: {w.dtype for w in layer.weights} for layer in mixed.model.layers if layer.weights}
    # No float32 copy; only the first convolution (0.5% of the FLOPs, on raw pixels) stays float32.
    assert dtypes.pop("block1_conv1") == {"float32"}
    assert set().union(*dtypes.values()) == {"bfloat16"}
    exact = extractor  # float32, the same seed
    assert exact.precision == "float32"
    assert len(mixed.model.weights) == len(exact.model.weights) == 2 * 14  # 14 convolutions to block5_conv2
    # Same weights, rounded once: features agree to bfloat16's precision.
    image = tf.constant(np.random.default_rng(0).uniform(0, 1, (1, 32, 32, 3)).astype(np.float32))
    a, b = exact(image)["block3_conv1"].numpy(), mixed(image)["block3_conv1"].numpy()
    assert np.abs(a - b).max() <= 0.05 * np.abs(a).max()


def test_a_second_run_of_the_same_size_reuses_the_compiled_steps_and_gives_the_same_image() -> None:
    layers = {"content_layers": ("block2_conv1",), "style_layers": ("block1_conv1", "block2_conv1")}
    fresh = load_extractor("random", seed=WEIGHTS_SEED, **layers)
    inputs = (gradient(32, 32), [stripes(32, 32)])
    first = stylize_arrays(*inputs, _options(**layers), extractor=fresh)
    second = stylize_arrays(*inputs, _options(**layers), extractor=fresh)
    assert (first.warm_start, second.warm_start) == (False, True)
    # Adam's moments and step count start over: a reused step is the same as a new one.
    np.testing.assert_array_equal(first.image, second.image)
    assert first.loss_final == second.loss_final


def test_loss_weights_and_learning_rate_do_not_need_new_compiled_steps() -> None:
    layers = {"content_layers": ("block2_conv1",), "style_layers": ("block1_conv1", "block2_conv1")}
    shared = load_extractor("random", seed=WEIGHTS_SEED, **layers)
    stylize_arrays(gradient(32, 32), [stripes(32, 32)], _options(**layers), extractor=shared)
    changed = _options(**layers, style_weight=0.5, learning_rate=0.05, epsilon=0.2, tv_weight=3.0)
    reused = stylize_arrays(gradient(32, 32), [stripes(32, 32)], changed, extractor=shared)
    alone = stylize_arrays(
        gradient(32, 32),
        [stripes(32, 32)],
        changed,
        extractor=load_extractor("random", seed=WEIGHTS_SEED, **layers),
    )
    assert reused.warm_start and not alone.warm_start
    np.testing.assert_array_equal(reused.image, alone.image)  # the new weights were used, not the old ones


def test_the_step_cache_keeps_the_most_recent_sizes_only() -> None:
    layers = ("block1_conv1",)
    bounded = load_extractor(
        "random", seed=WEIGHTS_SEED, content_layers=layers, style_layers=layers, step_cache_size=2
    )
    assert isinstance(steps_for(bounded), StepCache)
    options = _options(content_layers=layers, style_layers=layers, iterations=2)

    def run(side: int) -> bool:
        return stylize_arrays(gradient(side, side), [stripes()], options, extractor=bounded).warm_start

    assert [run(16), run(24), run(32)] == [False, False, False]
    assert len(steps_for(bounded)) == 2
    assert run(32) and run(24)  # the two most recent sizes are kept
    assert not run(16)  # the oldest was dropped


def test_lbfgs_runs_reuse_their_compiled_evaluation_too() -> None:
    layers = ("block1_conv1",)
    shared = load_extractor("random", seed=WEIGHTS_SEED, content_layers=layers, style_layers=layers)
    options = _options(content_layers=layers, style_layers=layers, optimizer="lbfgs", iterations=3)
    first = stylize_arrays(gradient(32, 32), [stripes()], options, extractor=shared)
    second = stylize_arrays(gradient(32, 32), [stripes()], options, extractor=shared)
    assert (first.warm_start, second.warm_start) == (False, True)
    np.testing.assert_array_equal(first.image, second.image)


def test_tiled_runs_of_any_size_share_one_compiled_set_of_tile_functions() -> None:
    layers = {"content_layers": ("block2_conv1",), "style_layers": ("block1_conv1", "block2_conv1")}
    shared = load_extractor("random", seed=WEIGHTS_SEED, **layers)
    options = _options(**layers, max_size=48, iterations=2)

    def run(extractor: FeatureExtractor, height: int, width: int) -> np.ndarray:
        inputs = (gradient(height, width), [stripes(48, 48)])
        return stylize_arrays(*inputs, options, extractor=extractor, max_tile_pixels=24 * 24).image

    run(shared, 48, 48)
    functions = steps_for(shared).tile_functions.get(shared, *layers.values(), "gram")
    traces = (
        functions.forward.experimental_get_tracing_count(),
        functions.backward.experimental_get_tracing_count(),
    )
    assert traces[1] >= 1  # the run above went by tiles, through these
    second = run(shared, 40, 48)  # another size, another run: no new trace
    assert (
        functions.forward.experimental_get_tracing_count(),
        functions.backward.experimental_get_tracing_count(),
    ) == traces
    np.testing.assert_array_equal(second, run(load_extractor("random", seed=WEIGHTS_SEED, **layers), 40, 48))


def test_the_loss_evaluation_stops_tracing_after_a_few_sizes() -> None:
    layers = ("block1_conv1",)
    shared = load_extractor("random", seed=WEIGHTS_SEED, content_layers=layers, style_layers=layers)
    options = _options(content_layers=layers, style_layers=layers, iterations=1)
    evaluate = steps_for(shared).evaluate(shared)

    def run(side: int) -> None:
        stylize_arrays(gradient(side, side), [stripes()], options, extractor=shared)

    for side in (16, 24, 32):
        run(side)
    traces = evaluate.experimental_get_tracing_count()
    assert 1 <= traces <= 3  # the runs evaluated through it, with shapes relaxed, not a graph per size
    run(40)
    run(48)
    assert evaluate.experimental_get_tracing_count() == traces
