"""The run plan (spec/plan.py): every decision about a run, asserted on the plan itself, with no
TensorFlow imported (tests/spec/test_no_tensorflow.py checks that)."""

from __future__ import annotations

import pytest

from spec.errors import ImageError, OptionsError
from spec.options import LADDER_RATIO, MIN_SIZE, StyleOptions
from spec.plan import Limits, MaskInput, RunPlan, largest_style_side, output_size, plan_run


def square(side: int, options: StyleOptions, **kwargs: object) -> RunPlan:
    return plan_run((side, side), [(side, side)], options, **kwargs)  # type: ignore[arg-type]


def sizes_and_steps(plan: RunPlan) -> list[tuple[int, int, int]]:
    return [(rung.height, rung.width, rung.steps) for rung in plan.rungs]


@pytest.mark.parametrize(
    ("height", "width", "start"), [(2048, 2048, 512), (1536, 2048, 512), (4096, 3072, 512), (3000, 900, 300)]
)
def test_the_rungs_rise_by_at_most_root_two_and_each_costs_about_the_same(
    height: int, width: int, start: int
) -> None:
    options = StyleOptions(max_size=4096, iterations=400, ladder_start=start)
    plan = plan_run((height, width), [(512, 512)], options)
    rungs = sizes_and_steps(plan)
    sides = [max(h, w) for h, w, _ in rungs]
    assert sides[0] == start and rungs[-1][:2] == (height, width)
    assert all(1.2 < b / a <= LADDER_RATIO * 1.01 for a, b in zip(sides, sides[1:], strict=False))
    assert all(abs(h / w - height / width) < 0.01 for h, w, _ in rungs)  # the content's shape throughout
    steps = [n for _, _, n in rungs]
    assert sum(steps) == 400 and steps == sorted(steps, reverse=True) and steps[-1] >= 1
    assert max(plan.rung_shares()) / min(plan.rung_shares()) < 1.25  # each rung within a step of its share
    assert sum(plan.rung_shares()) == pytest.approx(1.0)


def test_the_print_ladder_spends_a_sixth_of_the_work_of_one_size() -> None:
    plan = square(2048, StyleOptions(max_size=2048, iterations=400, ladder_start=512))
    assert sizes_and_steps(plan) == [
        (512, 512, 206), (724, 724, 104), (1024, 1024, 51), (1448, 1448, 26), (2048, 2048, 13)
    ]  # fmt: skip
    assert plan.full_size_steps() == pytest.approx(64.6, abs=0.1)


@pytest.mark.parametrize(("height", "width", "start"), [(64, 64, 32), (1000, 300, 64), (2048, 2048, 512)])
def test_few_steps_still_end_at_the_full_size(height: int, width: int, start: int) -> None:
    for iterations in range(1, 12):
        options = StyleOptions(max_size=2048, iterations=iterations, ladder_start=start)
        rungs = sizes_and_steps(plan_run((height, width), [(64, 64)], options))
        assert sum(n for _, _, n in rungs) == iterations and all(n > 0 for _, _, n in rungs)
        assert rungs[-1][:2] == (height, width)


def test_a_ladder_that_starts_at_the_size_is_one_size() -> None:
    plan = plan_run((300, 400), [(64, 64)], StyleOptions(iterations=7, ladder_start=512))
    assert sizes_and_steps(plan) == [(300, 400, 7)]
    assert sizes_and_steps(square(64, StyleOptions(iterations=1, ladder_start=32))) == [(64, 64, 1)]


def test_scales_split_the_steps_and_drop_too_small_scales() -> None:
    plan = plan_run((512, 384), [(64, 64)], StyleOptions(iterations=100, scales=(0.25, 0.5, 1.0)))
    assert sizes_and_steps(plan) == [(128, 96, 33), (256, 192, 33), (512, 384, 34)]
    # 64 * 0.125 = 8 px is under MIN_SIZE (16): that scale is dropped and its steps go to the others.
    nine = StyleOptions(iterations=9, scales=(0.125, 0.5, 1.0))
    assert sizes_and_steps(square(64, nine)) == [(32, 32, 4), (64, 64, 5)]
    assert sizes_and_steps(square(64, StyleOptions(iterations=1, scales=(0.5, 1.0)))) == [(64, 64, 1)]
    assert sizes_and_steps(square(64, StyleOptions(iterations=5))) == [(64, 64, 5)]


def test_the_output_is_the_content_scaled_down_to_size_never_up() -> None:
    assert output_size((3000, 4000), 512) == (384, 512)
    assert output_size((300, 400), 512) == (300, 400)
    plan = plan_run((3000, 4000), [(100, 100)], StyleOptions(max_size=512, iterations=3))
    assert (plan.height, plan.width) == (384, 512) and plan.content == (3000, 4000)


def test_work_counts_pixels() -> None:
    plan = square(2048, StyleOptions(max_size=2048, iterations=400, scales=(0.125, 0.25, 0.5, 1.0)))
    assert sizes_and_steps(plan) == [(256, 256, 100), (512, 512, 100), (1024, 1024, 100), (2048, 2048, 100)]
    assert plan.full_size_steps() == pytest.approx(100 * (1 / 64 + 1 / 16 + 1 / 4 + 1))
    assert plan.work_fraction(300) == pytest.approx((1 / 64 + 1 / 16 + 1 / 4) / (1 / 64 + 1 / 16 + 1 / 4 + 1))
    assert plan.work_fraction(0) == 0.0 and plan.work_fraction(1000) == 1.0


def test_each_rung_scales_the_styles_to_style_scale_times_its_longest_side() -> None:
    options = StyleOptions(max_size=1024, iterations=40, ladder_start=256, style_scale=0.5)
    plan = plan_run((768, 1024), [(600, 900)], options)
    assert [rung.style_side for rung in plan.rungs] == [
        round(0.5 * max(r.height, r.width)) for r in plan.rungs
    ]
    tiny = plan_run((40, 40), [(64, 64)], StyleOptions(max_size=40, iterations=1, style_scale=0.1))
    assert tiny.rungs[0].style_side == MIN_SIZE  # never under MIN_SIZE
    assert largest_style_side(2048) == 8192  # style_scale at most 4


def test_a_rung_over_the_tile_budget_is_tiled_and_the_others_are_not() -> None:
    options = StyleOptions(max_size=2048, iterations=400, ladder_start=512)
    plan = square(2048, options, limits=Limits(max_tile_pixels=1024 * 1024))
    assert [rung.tiled for rung in plan.rungs] == [False, False, False, True, True]
    assert not any(rung.tiled for rung in square(2048, options).rungs)  # 0: never tiled
    # A style image over the budget (style_scale 2) makes the targets tiled, not the step.
    wide = square(
        1024, StyleOptions(max_size=1024, iterations=1, style_scale=2.0), limits=Limits(1024 * 1024)
    )
    assert not wide.rungs[-1].tiled and wide.rungs[-1].tiled_targets


def test_a_much_enlarged_style_gets_a_note_and_a_resized_mask_another() -> None:
    options = StyleOptions(max_size=2048, iterations=10)
    plan = plan_run((2000, 2000), [(300, 200), (2048, 2048)], options, masks=[MaskInput(100, 100), None])
    assert len(plan.notes) == 2
    assert plan.notes[0].startswith("Style image 1 is 200x300 pixels") and "upscaled 6.7x" in plan.notes[0]
    assert plan.notes[1] == "Mask 1 was 100x100 pixels; it was resized to the content's 2000x2000."
    assert plan.refusals == ()


@pytest.mark.parametrize(
    ("styles", "masks", "options", "limits", "field", "words"),
    [
        ([], None, {}, Limits(), "style", "at least one style image"),
        ([(64, 64)] * 3, None, {}, Limits(max_styles=2), "style", "at most 2 style images"),
        ([(64, 64)], None, {"style_blend": (1.0, 2.0)}, Limits(), "style_blend", "2 weights but 1 style"),
        ([(64, 64)] * 2, [MaskInput(64, 64)], {}, Limits(), "mask", "1 mask(s) for 2 style image(s)"),
        ([(64, 64)], [MaskInput(64, 100)], {}, Limits(), "mask", "aspect ratio differs"),
        ([(64, 64)] * 2, [MaskInput(64, 64, black=True)] * 2, {}, Limits(), "mask", "every mask is black"),
    ],
)
def test_every_refusal_names_its_option_or_input(
    styles: list[tuple[int, int]],
    masks: list[MaskInput] | None,
    options: dict,
    limits: Limits,
    field: str,
    words: str,
) -> None:
    plan = plan_run((64, 64), styles, StyleOptions(iterations=2, **options), masks=masks, limits=limits)
    assert [refusal.field for refusal in plan.refusals] == [field]
    assert words in plan.refusals[0].message
    error = ImageError if field == "mask" else OptionsError
    with pytest.raises(error, match=f"^{field}: "):
        plan.check()


def test_a_black_mask_beside_a_style_without_one_is_allowed() -> None:
    plan = plan_run(
        (64, 64), [(64, 64)] * 2, StyleOptions(iterations=2), masks=[MaskInput(64, 64, True), None]
    )
    assert plan.check() is plan and plan.has_masks


def test_too_elongated_a_content_is_refused_with_its_sizes() -> None:
    plan = plan_run((16, 256), [(64, 64)], StyleOptions(max_size=64, iterations=1))
    assert plan.rungs == () and plan.refusals[0].field == "content"
    with pytest.raises(ImageError, match="256x16 pixels, 64x4 at size 64; each side needs at least 16"):
        plan.check()


def test_the_plan_as_json_lists_rungs_work_notes_and_refusals() -> None:
    plan = square(2048, StyleOptions(max_size=2048, iterations=400, ladder_start=512), limits=Limits(2**20))
    shown = plan.as_json()
    assert [rung["steps"] for rung in shown["rungs"]] == [206, 104, 51, 26, 13]
    assert sum(rung["work"] for rung in shown["rungs"]) == pytest.approx(1.0, abs=1e-3)
    assert shown["full_size_steps"] == pytest.approx(64.6, abs=0.1)
    assert shown["notes"] == [] and shown["refusals"] == []


def test_tiles_that_cannot_serve_masks_are_dropped_by_the_plan_which_says_so() -> None:
    budget = Limits(max_tile_pixels=64 * 64)
    masked = plan_run(
        (256, 256),
        [(256, 256)],
        StyleOptions(max_size=256, iterations=2),
        masks=[MaskInput(256, 256)],
        limits=budget,
    )
    sliced = square(256, StyleOptions(max_size=256, iterations=2, style_loss="sliced_w"), limits=budget)
    for plan in (masked, sliced):  # sliced_w sorts whole maps: not by tiles either
        assert plan.max_tile_pixels == 0 and not any(rung.tiled or rung.tiled_targets for rung in plan.rungs)
        assert any(
            note.startswith("Masks and style_loss=sliced_w are evaluated on the whole image")
            for note in plan.notes
        )
    for loss in ("gram", "mean_cov", "w2"):  # sums over positions: exact by tiles
        tiled = square(256, StyleOptions(max_size=256, iterations=2, style_loss=loss), limits=budget)
        assert tiled.max_tile_pixels == 64 * 64 and tiled.rungs[-1].tiled and tiled.notes == ()
    small = plan_run(
        (32, 32),
        [(32, 32)],
        StyleOptions(max_size=32, iterations=2),
        masks=[MaskInput(32, 32)],
        limits=budget,
    )
    assert small.notes == ()  # within the budget: nothing to say


def test_sliced_w_with_masks_is_refused_naming_the_option() -> None:
    options = StyleOptions(max_size=64, iterations=2, style_loss="sliced_w")
    plan = plan_run((64, 64), [(64, 64)], options, masks=[MaskInput(64, 64)])
    assert [refusal.field for refusal in plan.refusals] == ["style_loss"]
    assert "takes no masks" in plan.refusals[0].message
    assert plan_run((64, 64), [(64, 64)], options).refusals == ()
