"""The style target cache (worker/engine/style_cache.py) and per-rung targets: a second run with the
same painting runs no style image through VGG19, counted pass by pass; each rung's targets are made
when the rung starts. Random weights, images of at most 64 px."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from spec.options import StyleOptions
from spec.plan import plan_run
from tests.engine.conftest import SHALLOW, WEIGHTS_SEED, gradient, noise, stripes
from tests.support.engine import stylize_arrays
from worker.engine import StyleResult
from worker.engine.control import with_pooling
from worker.engine.model import FeatureExtractor, load_extractor
from worker.engine.steps import StepCache
from worker.engine.style_cache import StyleTargetCache, network_identity

CONTENT = (64, 48)  # (height, width): its rungs' shapes are never a style's (styles are square here)
LADDER = {"max_size": 64, "iterations": 9, "ladder_start": 32}  # rungs 32x24, 45x34, 64x48
MB = 2**20


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, int]]]:
    """The (height, width) of every image run through VGG19 for targets, in order: the compiled
    target function's calls and the extractor's own (eager) calls, which masks and mean_cov use."""
    seen: list[tuple[int, int]] = []
    features = StepCache.features

    def counted(self: StepCache, *arguments: Any) -> Callable:
        compiled = features(self, *arguments)

        def call(image: Any) -> Any:
            seen.append(tuple(image.shape[1:3]))
            return compiled(image)

        return call

    monkeypatch.setattr(StepCache, "features", counted)
    call = FeatureExtractor.__call__

    def eager(self: FeatureExtractor, images: Any) -> Any:
        if not hasattr(images, "graph"):  # eager tensors only: traced calls happen once per graph
            seen.append(tuple(images.shape[1:3]))
        return call(self, images)

    monkeypatch.setattr(FeatureExtractor, "__call__", eager)
    yield seen


def _style_passes(seen: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [shape for shape in seen if shape[0] == shape[1]]


def _run(
    content: np.ndarray,
    styles: list[np.ndarray],
    options: dict,
    extractor: FeatureExtractor,
    cache: StyleTargetCache | None,
    **extra: Any,
) -> StyleResult:
    return stylize_arrays(
        content, styles, StyleOptions(**options), extractor=extractor, style_cache=cache, **extra
    )


def test_a_second_job_with_the_same_painting_runs_no_style_pass(
    extractor: FeatureExtractor, passes: list[tuple[int, int]]
) -> None:
    cache = StyleTargetCache(64 * MB)
    painting = stripes(40, 40)
    first = _run(gradient(*CONTENT), [painting], LADDER, extractor, cache)
    assert _style_passes(passes) == [(32, 32), (45, 45), (64, 64)]  # one per rung, at its style side
    assert first.style_targets == {"cached": 0, "computed": 3}

    passes.clear()
    another_photo = np.ascontiguousarray(gradient(*CONTENT)[::-1])
    uploaded_again = painting.copy()  # the same bytes in another array
    second = _run(another_photo, [uploaded_again], LADDER, extractor, cache)
    assert _style_passes(passes) == []
    assert passes == [(32, 24), (45, 34), (64, 48)]  # each rung's content only
    assert second.style_targets == {"cached": 3, "computed": 0}
    # The cached targets are the computed ones: the same picture as a run without a cache.
    alone = _run(another_photo, [painting], LADDER, extractor, None)
    np.testing.assert_array_equal(second.image, alone.image)
    assert (second.loss_initial, second.loss_final) == (alone.loss_initial, alone.loss_final)


def test_a_blend_reuses_each_painting_it_has_seen(
    extractor: FeatureExtractor, passes: list[tuple[int, int]]
) -> None:
    cache = StyleTargetCache(64 * MB)
    options = {"max_size": 64, "iterations": 3}
    _run(gradient(*CONTENT), [stripes(40, 40)], options, extractor, cache)
    passes.clear()
    blended = _run(gradient(*CONTENT), [noise(30, 30), stripes(40, 40)], options, extractor, cache)
    assert _style_passes(passes) == [(64, 64)]  # the new painting only
    assert blended.style_targets == {"cached": 1, "computed": 1}


def test_masked_and_mean_cov_runs_reuse_the_style_statistics_whatever_the_mask(
    extractor: FeatureExtractor, passes: list[tuple[int, int]]
) -> None:
    cache = StyleTargetCache(64 * MB)
    options = {"max_size": 64, "iterations": 3, "style_loss": "mean_cov"}
    left, right = np.zeros(CONTENT, np.uint8), np.zeros(CONTENT, np.uint8)
    left[:, :24], right[:, 24:] = 255, 255
    styles = [stripes(40, 40), noise(30, 30)]
    _run(gradient(*CONTENT), styles, options, extractor, cache, masks=[left, right])
    assert len(_style_passes(passes)) == 2
    passes.clear()
    # Other masks and no masks at all: a style's statistics do not depend on where it goes.
    swapped = _run(gradient(*CONTENT), styles, options, extractor, cache, masks=[right, left])
    unmasked = _run(gradient(*CONTENT), styles, options, extractor, cache)
    assert _style_passes(passes) == []
    assert swapped.style_targets == unmasked.style_targets == {"cached": 2, "computed": 0}
    alone = _run(gradient(*CONTENT), styles, options, extractor, None, masks=[right, left])
    np.testing.assert_array_equal(swapped.image, alone.image)
    # The Gram loss matches other statistics: it computes its own.
    gram = _run(gradient(*CONTENT), styles, {**options, "style_loss": "gram"}, extractor, cache)
    assert gram.style_targets == {"cached": 0, "computed": 2}


def test_colour_matched_styles_are_the_pixels_the_network_sees(extractor: FeatureExtractor) -> None:
    """colors=histogram maps a style's colours to the content's: another photo, other targets."""
    cache = StyleTargetCache(64 * MB)
    options = {"max_size": 64, "iterations": 2, "colors": "histogram"}
    _run(gradient(*CONTENT), [stripes(40, 40)], options, extractor, cache)
    again = _run(gradient(*CONTENT), [stripes(40, 40)], options, extractor, cache)
    other = _run(noise(*CONTENT), [stripes(40, 40)], options, extractor, cache)
    assert again.style_targets["cached"] == 1 and other.style_targets == {"cached": 0, "computed": 1}


def test_the_key_holds_the_weights_precision_pooling_and_layers(
    extractor: FeatureExtractor, mixed: FeatureExtractor
) -> None:
    same_weights = load_extractor("random", seed=WEIGHTS_SEED)
    assert network_identity(same_weights) == network_identity(extractor)  # a rebuilt worker still hits
    layers = ("block1_conv1", "block2_conv1")
    others = [
        load_extractor("random", seed=WEIGHTS_SEED + 1),
        mixed,
        load_extractor("random", seed=WEIGHTS_SEED, content_layers=layers[:1], style_layers=layers),
        with_pooling(extractor, "average"),
    ]
    identities = {network_identity(other) for other in [extractor, *others]}
    assert len(identities) == 5
    # Within one network, the style side and the style layers are in the key too.
    cache = StyleTargetCache(64 * MB)
    options = {"max_size": 64, "iterations": 2}
    _run(gradient(*CONTENT), [stripes(40, 40)], options, extractor, cache)
    for changed in ({"style_scale": 0.5}, {"style_layers": ("block1_conv1", "block3_conv1")}):
        result = _run(gradient(*CONTENT), [stripes(40, 40)], {**options, **changed}, extractor, cache)
        assert result.style_targets == {"cached": 0, "computed": 1}, changed


def test_the_cache_is_bounded_in_bytes_least_recently_used_first() -> None:
    cache = StyleTargetCache(3000)
    entry = {"block1_conv1": np.zeros(250, np.float32)}  # 1000 bytes

    def fetch(key: str, value: dict = entry) -> bool:
        return cache.fetch((key,), lambda: value)[1]

    assert [fetch("a"), fetch("b"), fetch("c"), fetch("a")] == [False, False, False, True]
    assert (len(cache), cache.bytes) == (3, 3000)
    assert not fetch("d")  # over the bound: "b", the least recently used, goes
    assert [fetch("a"), fetch("c"), fetch("d")] == [True, True, True] and not fetch("b")
    assert cache.bytes <= 3000
    huge = {"block1_conv1": np.zeros(1000, np.float32)}
    assert not fetch("huge", huge) and not fetch("huge", huge)  # larger than the bound: never kept
    assert (cache.hits, cache.misses) == (4, 7)
    off = StyleTargetCache(0)  # ATELIER_STYLE_TARGET_CACHE_MB=0: nothing kept
    assert not off.fetch(("a",), lambda: entry)[1] and len(off) == 0


def test_each_rung_computes_its_targets_when_it_starts(
    extractor: FeatureExtractor, passes: list[tuple[int, int]]
) -> None:
    events: list[tuple[int, int]] = []  # (step, passes made before it was reported)
    rungs = plan_run(CONTENT, [(40, 40)], StyleOptions(**LADDER)).rungs
    _run(
        gradient(*CONTENT), [stripes(40, 40)], LADDER, extractor, None,
        on_progress=lambda progress: events.append((progress.step, len(passes))),
    )  # fmt: skip
    # Before step 1 only the first rung's content and style; the next rung's when its first step comes.
    assert passes[:2] == [(32, 24), (32, 32)]
    first_steps = [rungs[0].steps + 1, rungs[0].steps + rungs[1].steps + 1]
    counts = dict(events)
    assert counts[1] == 2 and counts[first_steps[0] - 1] == 2 and counts[first_steps[0]] == 4
    assert counts[first_steps[1] - 1] == 4 and counts[first_steps[1]] == 6


def test_a_run_stopped_early_reports_its_loss_at_the_rung_it_reached(
    extractor: FeatureExtractor, passes: list[tuple[int, int]]
) -> None:
    steps: list[int] = []
    stopped = _run(
        gradient(*CONTENT), [stripes(40, 40)], LADDER, extractor, None,
        on_progress=lambda progress: steps.append(progress.step), should_stop=lambda: len(steps) >= 2,
    )  # fmt: skip
    assert (stopped.steps, stopped.stopped, stopped.image.shape) == (2, True, (*CONTENT, 3))
    assert stopped.loss_size == (32, 24)
    assert not any(shape in passes for shape in [(45, 34), (64, 48), (45, 45), (64, 64)])  # none made
    # The same initial loss as a run of the first rung's size.
    small = _run(
        gradient(*CONTENT), [stripes(40, 40)], {**LADDER, "max_size": 32, "iterations": 3}, extractor, None
    )
    assert stopped.loss_initial["total"] == pytest.approx(small.loss_initial["total"], rel=1e-5)
    done = stylize_arrays(gradient(*CONTENT), [stripes(40, 40)], StyleOptions(**LADDER), extractor=extractor)
    assert done.loss_size == CONTENT


def test_tiled_targets_are_cached_by_their_tile_budget(shallow: FeatureExtractor) -> None:
    cache = StyleTargetCache(64 * MB)
    content, styles = gradient(96, 128), [stripes(96, 96)]  # the tiling tests' size: their steps
    options = StyleOptions(max_size=128, iterations=2, **SHALLOW)  # type: ignore[arg-type]

    def run(cache: StyleTargetCache | None, max_tile_pixels: int) -> StyleResult:
        return stylize_arrays(content, styles, options, extractor=shallow, max_tile_pixels=max_tile_pixels,
                              style_cache=cache)  # fmt: skip

    first, second = run(cache, 64 * 64), run(cache, 64 * 64)
    assert (first.style_targets["computed"], second.style_targets) == (1, {"cached": 1, "computed": 0})
    np.testing.assert_array_equal(second.image, run(None, 64 * 64).image)
    assert run(cache, 0).style_targets == {"cached": 0, "computed": 1}  # untiled sums differ in rounding
