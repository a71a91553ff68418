"""The coarse-to-fine ladder (option ladder_start, issue 12): its rungs and steps, Adam's state carried
from rung to rung, tiles wherever a rung exceeds the budget. Random weights, outputs of at most 128 px."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tensorflow as tf

from spec.errors import OptionsError
from spec.options import StyleOptions
from spec.plan import Limits, plan_run
from tests.engine.conftest import SHALLOW, gradient, stripes
from tests.support.engine import stylize_arrays
from worker.engine import Progress, StyleResult
from worker.engine.model import FeatureExtractor
from worker.engine.steps import AdamHyper, AdamState, Compiled


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ladder_start": 16}, "ladder_start must be 0 (off) or at least 32 px"),
        ({"ladder_start": 256, "scales": (0.5, 1.0)}, "ladder_start cannot be set with scales"),
    ],
)
def test_a_bad_ladder_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(OptionsError, match=re.escape(message)):
        StyleOptions(**changes)  # type: ignore[arg-type]


def test_carried_state_is_resized_and_keeps_its_step_count(extractor: FeatureExtractor) -> None:
    compiled = Compiled(extractor, 64, 48)
    moment = tf.fill((1, 32, 24, 3), -0.5)
    velocity = tf.fill((1, 32, 24, 3), 0.25)
    compiled.carry(np.full((64, 48, 3), 0.5, np.float32), AdamState(moment, velocity, 17.0))
    state = compiled.state()
    assert state.moment.shape == (1, 64, 48, 3) and state.steps == 17.0
    np.testing.assert_allclose(state.moment.numpy(), -0.5, atol=1e-5)
    np.testing.assert_allclose(state.velocity.numpy(), 0.25, atol=1e-5)
    # Going on from that state, the first update moves the image against the carried mean: a cold
    # start (zero moments, Adam's epsilon 0.1) barely moves it with the same small gradient.
    hyper = AdamHyper(*(tf.constant(value, tf.float32) for value in (0.02, 0.99, 0.999, 0.1)))
    compiled.apply_adam(tf.fill((1, 64, 48, 3), 1e-3), hyper)
    carried_move = float(np.abs(compiled.image.numpy() - 0.5).mean())
    compiled.reset(np.full((64, 48, 3), 0.5, np.float32))
    compiled.apply_adam(tf.fill((1, 64, 48, 3), 1e-3), hyper)
    cold_move = float(np.abs(compiled.image.numpy() - 0.5).mean())
    assert carried_move > 10 * cold_move


def _ladder(changes: dict[str, object] | None = None) -> StyleOptions:
    # The service's objective (content start, total variation 30), where a cold rung shows most.
    # 15 steps: rungs of 9, 4 and 2 steps; a cold third rung still jumps (x2.1 measured, x2.1 with 30).
    values: dict[str, object] = {"max_size": 64, "iterations": 15, "ladder_start": 32, **(changes or {})}
    return StyleOptions(**values)  # type: ignore[arg-type]


def test_a_ladder_run_counts_every_step_and_previews_at_full_size(extractor: FeatureExtractor) -> None:
    seen: list[Progress] = []
    previews: list[tuple[int, tuple[int, ...]]] = []
    options = _ladder({"preview_every": 5, "init": "noise", "tv_weight": 0.0})
    result = stylize_arrays(
        gradient(64, 48), [stripes()], options, extractor=extractor, on_progress=seen.append,
        on_preview=lambda step, image: previews.append((step, image.shape)),
    )  # fmt: skip
    rungs = plan_run((64, 48), [(64, 64)], options).rungs
    assert [(rung.height, rung.width) for rung in rungs] == [(32, 24), (45, 34), (64, 48)]
    assert (result.steps, result.stopped, result.image.shape) == (15, False, (64, 48, 3))
    assert [p.step for p in seen] == list(range(1, 16)) and {p.total for p in seen} == {15}
    assert previews == [(5, (64, 48, 3)), (10, (64, 48, 3)), (15, (64, 48, 3))]
    assert result.loss_final["total"] < 0.5 * result.loss_initial["total"]


def test_carrying_adams_state_avoids_a_cold_start_at_every_rung(
    extractor: FeatureExtractor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run() -> tuple[StyleResult, list[float]]:
        losses: list[float] = []
        result = stylize_arrays(
            gradient(), [stripes()], _ladder(), extractor=extractor,
            on_progress=lambda progress: losses.append(progress.loss["total"]),
        )  # fmt: skip
        return result, losses

    carried, carried_losses = run()
    # The same ladder with Adam restarted at every rung, as coarse to fine worked before the ladder.
    monkeypatch.setattr(Compiled, "carry", lambda self, initial, state: self.reset(initial))
    cold, cold_losses = run()

    rungs = plan_run((64, 64), [(64, 64)], _ladder()).rungs
    first_of_third_rung = sum(rung.steps for rung in rungs[:2])  # 0-based step index
    # A cold rung's first update is about lr in every pixel: the loss jumps; a carried one goes on.
    assert cold_losses[first_of_third_rung + 1] > 1.5 * cold_losses[first_of_third_rung]
    assert carried_losses[first_of_third_rung + 1] < 1.1 * carried_losses[first_of_third_rung]
    assert carried.loss_final["total"] < 0.6 * cold.loss_final["total"]


def test_a_resumed_ladder_goes_on_from_its_rung(extractor: FeatureExtractor) -> None:
    checkpoints: dict[int, np.ndarray] = {}
    options = _ladder({"init": "noise", "tv_weight": 0.0})
    stylize_arrays(
        gradient(), [stripes()], options, extractor=extractor, checkpoint_every=10,
        on_checkpoint=lambda step, image: checkpoints.setdefault(step, image),
    )  # fmt: skip
    steps: list[int] = []
    resumed = stylize_arrays(
        gradient(), [stripes()], options, extractor=extractor, start_image=checkpoints[10], start_step=10,
        on_progress=lambda progress: steps.append(progress.step),
    )  # fmt: skip
    assert steps == list(range(11, 16)) and resumed.steps == 15
    assert resumed.loss_final["total"] < resumed.loss_initial["total"]


def test_a_tiled_ladder_makes_the_untiled_ladders_picture(shallow: FeatureExtractor) -> None:
    options = StyleOptions(
        **SHALLOW, max_size=128, iterations=8, ladder_start=64, init="noise", tv_weight=1.0
    )
    content, style = gradient(96, 128), stripes(224, 208)
    budget = 48 * 48  # every rung (64, 91 and 128 px) is over it: all are tiled
    plan = plan_run((96, 128), [(224, 208)], options, limits=Limits(max_tile_pixels=budget))
    assert len(plan.rungs) == 3 and all(rung.tiled for rung in plan.rungs)

    def run(max_tile_pixels: int) -> StyleResult:
        return stylize_arrays(content, [style], options, extractor=shallow, max_tile_pixels=max_tile_pixels)

    untiled, tiled = run(0), run(budget)
    assert tiled.steps == untiled.steps == 8
    assert tiled.loss_final["total"] < 0.75 * tiled.loss_initial["total"]
    assert tiled.loss_final["total"] == pytest.approx(untiled.loss_final["total"], rel=1e-4)
    assert np.abs(tiled.image.astype(int) - untiled.image).max() <= 1  # rounding to uint8 at most


def test_the_ladder_with_lbfgs_restarts_it_per_rung_and_lowers_the_loss(extractor: FeatureExtractor) -> None:
    options = _ladder({"optimizer": "lbfgs", "iterations": 8, "init": "noise", "tv_weight": 0.0})
    result = stylize_arrays(gradient(), [stripes()], options, extractor=extractor)
    assert result.image.shape == (64, 64, 3) and 1 <= result.steps <= 8
    assert result.loss_final["total"] < 0.5 * result.loss_initial["total"]
