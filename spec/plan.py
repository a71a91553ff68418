"""The run plan: every decision about one style-transfer run, made once, as a value.

``plan_run`` takes the shapes of the input images, the options and the server's limits, and decides
the output size, each rung of a coarse-to-fine run with its steps and its share of the work, each
style image's side at every rung, whether a rung is evaluated by tiles, the notes a person should
see (a style image much enlarged, a mask resized) and the refusals, each naming the option or
input at fault. It imports no TensorFlow: the web shows its estimates and notes from it, the CLI
and the web refuse with it, the worker reports progress against it, and the engine executes it
(``worker.engine.stylize(plan, images, extractor, hooks)``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from spec.errors import ImageError, OptionsError
from spec.options import LADDER_RATIO, MAX_STYLE_SCALE, MIN_SIZE, StyleOptions

Size = tuple[int, int]  # (height, width) in pixels

# A style's mask may differ from the content's aspect ratio by this fraction (it is resized to the
# content's size).
MASK_ASPECT_TOLERANCE = 0.01
# A style image enlarged more than this for the output (a print from a small scan) gets a note: its
# brush strokes come out soft.
STYLE_UPSCALE_NOTE_FACTOR = 2.0


@dataclass(frozen=True)
class MaskInput:
    """What the plan needs to know of one style's mask: its size, and whether it is black everywhere
    (no 8-bit grey level above 0: that style goes nowhere)."""

    height: int
    width: int
    black: bool = False


@dataclass(frozen=True)
class Limits:
    """The server's limits a plan obeys."""

    max_tile_pixels: int = 0  # images of more pixels are evaluated by tiles of at most this many; 0: never
    max_styles: int | None = None  # style images a run may blend; None: any number


@dataclass(frozen=True)
class Rung:
    """One size of a run: the image is optimised ``steps`` steps at ``height`` x ``width``."""

    height: int
    width: int
    steps: int
    style_side: int  # the longest side every style image is scaled to for this rung's targets
    tiled: bool  # the step (loss and gradient) is evaluated by tiles of the plan's max_tile_pixels
    tiled_targets: bool  # the targets (content or a style image over the budget) are computed by tiles

    @property
    def pixels(self) -> int:
        return self.height * self.width


@dataclass(frozen=True)
class Refusal:
    """Why a run cannot be made: ``field`` is the option (public name) or input ("content", "style",
    "mask") at fault, ``message`` says what is wrong without repeating it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


# Refusals about the images rather than the options: RunPlan.check raises ImageError for them.
IMAGE_FIELDS = frozenset({"content", "mask"})


@dataclass(frozen=True)
class RunPlan:
    options: StyleOptions
    content: Size  # the content image as given
    height: int  # the output: the content scaled down to options.max_size, never up
    width: int
    styles: tuple[Size, ...]  # the style images as given
    masks: tuple[MaskInput | None, ...]  # one per style image, or () for a run without masks
    rungs: tuple[Rung, ...]  # coarsest first, ending at the output's size; their steps sum to iterations
    max_tile_pixels: int
    notes: tuple[str, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    _total_work: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_total_work", float(sum(rung.pixels * rung.steps for rung in self.rungs)))

    @property
    def steps(self) -> int:
        return self.options.iterations

    @property
    def has_masks(self) -> bool:
        return any(mask is not None for mask in self.masks)

    def check(self) -> RunPlan:
        """The plan itself, or its first refusal raised: ImageError about the images, OptionsError
        about the options."""
        if self.refusals:
            refusal = self.refusals[0]
            raise (ImageError if refusal.field in IMAGE_FIELDS else OptionsError)(str(refusal))
        return self

    def work_fraction(self, step: int) -> float:
        """The fraction (0..1) of the run's work done after ``step`` steps: a step costs in proportion to
        its rung's pixels, so coarse-to-fine progress neither crawls nor jumps."""
        if self._total_work <= 0:
            return 0.0
        done, left = 0.0, step
        for rung in self.rungs:
            taken = min(max(left, 0), rung.steps)
            done += rung.pixels * taken
            left -= taken
        return min(done / self._total_work, 1.0)

    def full_size_steps(self) -> float:
        """The run's work in steps of its full size: what a time estimate multiplies a step's time by."""
        return self._total_work / self.rungs[-1].pixels if self.rungs else 0.0

    def megapixel_steps(self, first_step: int, last_step: int) -> float:
        """The work from ``first_step`` to ``last_step`` in megapixel-steps: what a pace is per."""
        done = self.work_fraction(last_step) - self.work_fraction(first_step)
        return done * self._total_work / 1e6

    def rung_shares(self) -> list[float]:
        """Each rung's share of the run's work (summing to 1)."""
        if self._total_work <= 0:
            return []
        return [rung.pixels * rung.steps / self._total_work for rung in self.rungs]

    def as_json(self) -> dict[str, Any]:
        """The plan as the API and the page read it."""
        return {
            "width": self.width,
            "height": self.height,
            "steps": self.steps,
            "full_size_steps": round(self.full_size_steps(), 3),
            "max_tile_pixels": self.max_tile_pixels,
            "rungs": [
                {
                    "width": rung.width,
                    "height": rung.height,
                    "steps": rung.steps,
                    "work": round(share, 4),
                    "style_side": rung.style_side,
                    "tiled": rung.tiled,
                }
                for rung, share in zip(self.rungs, self.rung_shares(), strict=True)
            ],
            "notes": list(self.notes),
            "refusals": [{"field": refusal.field, "message": refusal.message} for refusal in self.refusals],
        }


def plan_run(
    content: Size,
    styles: Sequence[Size],
    options: StyleOptions,
    *,
    masks: Sequence[MaskInput | None] | None = None,
    limits: Limits = Limits(),
) -> RunPlan:
    """The plan of a run on a ``content`` image and ``styles`` images of these (height, width) sizes."""
    masks = tuple(masks or ())
    height, width = output_size(content, options.max_size)
    refusals = [
        *count_refusals(len(styles), len(masks) if masks else None, options, limits),
        *_size_refusals(content, height, width, options),
        *_mask_refusals(masks, content),
        *_loss_refusals(options, masks),
    ]
    notes = [*_style_notes(styles, height, width, options), *_mask_notes(masks, content)]
    budget = limits.max_tile_pixels
    if budget and not tiles_serve(options, any(mask is not None for mask in masks)):
        if _over(budget, height * width):
            notes.append(UNTILED_NOTE)
        budget = 0
    rungs = []
    if min(height, width) >= MIN_SIZE:
        for (rung_height, rung_width), steps in _sizes_and_steps(height, width, options):
            side = style_side(rung_height, rung_width, options.style_scale)
            scaled = [_scaled_to(style, side) for style in styles]
            rungs.append(
                Rung(
                    height=rung_height,
                    width=rung_width,
                    steps=steps,
                    style_side=side,
                    tiled=_over(budget, rung_height * rung_width),
                    tiled_targets=any(_over(budget, h * w) for h, w in [(rung_height, rung_width), *scaled]),
                )
            )
    return RunPlan(
        options=options,
        content=(int(content[0]), int(content[1])),
        height=height,
        width=width,
        styles=tuple((int(h), int(w)) for h, w in styles),
        masks=masks,
        rungs=tuple(rungs),
        max_tile_pixels=budget,
        notes=tuple(notes),
        refusals=tuple(refusals),
    )


# Tiles reproduce every loss whose statistics are sums over positions (worker/engine/tiling.py), not
# masks: a run they cannot serve is evaluated whole, in more memory, rather than refused.
UNTILED_NOTE = (
    "Masks and style_loss=sliced_w are evaluated on the whole image, not by tiles: this picture needs "
    "more memory than the server's tile budget."
)
TILED_LOSSES = ("gram", "mean_cov", "w2")  # the style losses the tiled passes serve: sums over positions


def tiles_serve(options: StyleOptions, has_masks: bool) -> bool:
    """Whether tiled evaluation can serve a run with these options (and masks or not)."""
    return not has_masks and options.style_loss in TILED_LOSSES


def output_size(content: Size, max_size: int) -> Size:
    """The content's size scaled down so its longest side is at most ``max_size``, never up."""
    height, width = content
    if max(height, width) <= max_size:
        return height, width
    return _scaled_to(content, max_size)


def style_side(height: int, width: int, style_scale: float) -> int:
    """The longest side a style image is scaled to (up or down) for an image of this size: style_scale
    times its longest side, at least MIN_SIZE."""
    return max(MIN_SIZE, round(style_scale * max(height, width)))


def largest_style_side(max_size: int) -> int:
    """The longest side any style image is used at by a run of at most ``max_size`` px (at the
    style_scale option's maximum): a larger stored copy of a style image would be for nothing."""
    return style_side(max_size, max_size, MAX_STYLE_SCALE)


def mask_aspect_differs(mask: Size, content: Size) -> bool:
    """Whether two (height, width) sizes differ in aspect ratio by more than MASK_ASPECT_TOLERANCE."""
    (mask_height, mask_width), (height, width) = mask, content
    return abs((mask_width / mask_height) / (width / height) - 1.0) > MASK_ASPECT_TOLERANCE


def _scaled_to(size: Size, longest: int) -> Size:
    height, width = size
    scale = longest / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _over(budget: int, pixels: int) -> bool:
    return 0 < budget < pixels


def _size_refusals(content: Size, height: int, width: int, options: StyleOptions) -> list[Refusal]:
    if min(height, width) >= MIN_SIZE:
        return []
    return [
        Refusal(
            "content",
            f"the content image is {content[1]}x{content[0]} pixels, {width}x{height} at size "
            f"{options.max_size}; each side needs at least {MIN_SIZE} pixels (use a less elongated image "
            "or a larger size)",
        )
    ]


def count_refusals(
    style_count: int, mask_count: int | None, options: StyleOptions, limits: Limits = Limits()
) -> list[Refusal]:
    """The refusals that need only the number of style images and masks (None: no masks given), so a
    caller can refuse before decoding any image; plan_run includes them."""
    if not style_count:
        return [Refusal("style", "at least one style image is required")]
    refusals = []
    if limits.max_styles is not None and style_count > limits.max_styles:
        refusals.append(
            Refusal("style", f"at most {limits.max_styles} style images are accepted, not {style_count}")
        )
    blend = options.style_blend
    if blend is not None and len(blend) != style_count:
        refusals.append(
            Refusal("style_blend", f"has {len(blend)} weights but {style_count} style image(s) were sent")
        )
    if mask_count is not None and mask_count != style_count:
        refusals.append(
            Refusal(
                "mask",
                f"{mask_count} mask(s) for {style_count} style image(s); send none, or one per style image "
                "in the same order (an empty part, or 'none', for a style without a mask)",
            )
        )
    return refusals


def _loss_refusals(options: StyleOptions, masks: tuple[MaskInput | None, ...]) -> list[Refusal]:
    if options.style_loss == "sliced_w" and any(mask is not None for mask in masks):
        return [
            Refusal(
                "style_loss",
                "sliced_w compares whole distributions and takes no masks: use gram, mean_cov or w2 "
                "with masks",
            )
        ]
    return []


def _mask_refusals(masks: tuple[MaskInput | None, ...], content: Size) -> list[Refusal]:
    if not any(mask is not None for mask in masks):
        return []
    refusals = []
    for number, mask in enumerate(masks, start=1):
        if mask is not None and mask_aspect_differs((mask.height, mask.width), content):
            refusals.append(
                Refusal(
                    "mask",
                    f"mask {number} is {mask.width}x{mask.height} pixels; its aspect ratio differs from the "
                    f"content image's ({content[1]}x{content[0]}) by more than {MASK_ASPECT_TOLERANCE:.0%}",
                )
            )
    if all(mask is not None and mask.black for mask in masks):
        refusals.append(
            Refusal("mask", "every mask is black, so no style would go anywhere (white = this style here)")
        )
    return refusals


def _style_notes(styles: Sequence[Size], height: int, width: int, options: StyleOptions) -> list[str]:
    side = style_side(height, width, options.style_scale)
    notes = []
    for number, (style_height, style_width) in enumerate(styles, start=1):
        factor = side / max(style_height, style_width)
        if factor > STYLE_UPSCALE_NOTE_FACTOR:
            notes.append(
                f"Style image {number} is {style_width}x{style_height} pixels; for this {max(height, width)} "
                f"px picture it is upscaled {factor:.1f}x (to {side} px on its longest side), so its brush "
                "strokes may look soft: a larger style image keeps them crisp."
            )
    return notes


def _mask_notes(masks: tuple[MaskInput | None, ...], content: Size) -> list[str]:
    return [
        f"Mask {number} was {mask.width}x{mask.height} pixels; it was resized to the content's "
        f"{content[1]}x{content[0]}."
        for number, mask in enumerate(masks, start=1)
        if mask is not None and (mask.height, mask.width) != tuple(content)
    ]


def _sizes_and_steps(height: int, width: int, options: StyleOptions) -> list[tuple[Size, int]]:
    """(size, steps) of each size a run of ``height`` x ``width`` optimises, coarsest first, ending at
    that size; the steps sum to ``options.iterations``.

    ``ladder_start``: rungs from that longest side up to the full size, evenly spaced in log size and
    at most LADDER_RATIO apart, the steps split as equal work (see _work_split). Else ``scales``: the
    iterations split equally, the remainder to the full size. Sizes whose shorter side would be under
    MIN_SIZE, or that round to the size before them, are dropped, and so is a size left with no step.
    """
    if options.ladder_start:
        sizes = _ladder_sizes(height, width, options.ladder_start)
        steps = _work_split(sizes, options.iterations)
    else:
        scaled = [(round(height * scale), round(width * scale)) for scale in options.scales[:-1]]
        sizes = _usable(scaled, height, width)
        steps = [options.iterations // len(sizes)] * len(sizes)
        steps[-1] += options.iterations - sum(steps)
    return [(size, n) for size, n in zip(sizes, steps, strict=True) if n > 0]


def _usable(sizes: list[Size], height: int, width: int) -> list[Size]:
    """Increasing sizes below the full one, without those too small or equal to a neighbour, then
    the full size."""
    kept = [size for size in sizes if min(size) >= MIN_SIZE] + [(height, width)]
    return list(dict.fromkeys(kept))


def _ladder_sizes(height: int, width: int, start: int) -> list[Size]:
    longest = max(height, width)
    if start >= longest:
        return [(height, width)]
    rungs = math.ceil(math.log(longest / start) / math.log(LADDER_RATIO) - 1e-9)
    sides = [start * (longest / start) ** (rung / rungs) for rung in range(rungs)]
    return _usable(
        [(round(height * side / longest), round(width * side / longest)) for side in sides], height, width
    )


def _work_split(sizes: list[Size], iterations: int) -> list[int]:
    """Steps per rung in inverse proportion to its pixels, so each rung costs about the same: the
    style is learned on the small rungs and the large ones only refine it (a 2048 px print from 512
    px: 206, 104, 51, 26 and 13 of 400 steps). Rounded cumulatively, so they sum to ``iterations``;
    the full size gets at least one step, from the rung with the most."""
    shares = [1.0 / (h * w) for h, w in sizes]
    total, ends, running = sum(shares), [], 0.0
    for share in shares:
        running += share
        ends.append(round(iterations * running / total))
    steps = [end - start for start, end in zip([0, *ends], ends, strict=False)]
    if steps[-1] == 0:
        steps[steps.index(max(steps))] -= 1
        steps[-1] = 1
    return steps


# Video (docs/video.md): the temporal loss and the warped start are whole-image terms that tiles do
# not reproduce, so a clip's frames are evaluated untiled (video frames are small).
UNTILED_VIDEO_NOTE = (
    "Video frames are evaluated on the whole frame, not by tiles: these frames need more memory than "
    "the server's tile budget."
)


@dataclass(frozen=True)
class VideoPlan:
    """A clip's run: ``first`` plans frame 1 (a still of ``iterations`` steps), ``later`` every frame
    after it (the same options at ``frame_steps`` steps), ``frames`` at ``fps``."""

    first: RunPlan
    later: RunPlan
    frames: int
    fps: float

    @property
    def options(self) -> StyleOptions:
        return self.first.options

    @property
    def refusals(self) -> tuple[Refusal, ...]:
        return self.first.refusals

    def check(self) -> VideoPlan:
        self.first.check()
        return self

    def frame_plan(self, frame: int) -> RunPlan:
        """The plan of frame ``frame`` (1-based)."""
        return self.first if frame <= 1 else self.later

    def steps_of(self, frame: int) -> int:
        return self.frame_plan(frame).steps

    def total_steps(self) -> int:
        return self.first.steps + (self.frames - 1) * self.later.steps

    def full_size_steps(self) -> float:
        """The clip's work in steps of the output's size (for time estimates)."""
        return self.first.full_size_steps() + (self.frames - 1) * self.later.full_size_steps()

    def work_fraction(self, frame: int, step: int) -> float:
        """The fraction (0..1) of the clip's work done at ``step`` of frame ``frame`` (1-based), the
        frames before it finished."""
        total = self.full_size_steps()
        if total <= 0:
            return 0.0
        before = (
            0.0 if frame <= 1 else self.first.full_size_steps() + (frame - 2) * self.later.full_size_steps()
        )
        plan = self.frame_plan(frame)
        done = before + plan.work_fraction(step) * plan.full_size_steps()
        return min(done / total, 1.0)

    def describe(self, frame: int, step: int) -> str:
        """Progress as a person reads it: "frame 7 of 36, step 20 of 40"."""
        return f"frame {frame} of {self.frames}, step {step} of {self.steps_of(frame)}"

    def as_json(self) -> dict[str, Any]:
        return {
            **self.first.as_json(),
            "frames": self.frames,
            "fps": self.fps,
            "frame_steps": self.later.steps,
            "total_steps": self.total_steps(),
            "full_size_steps": round(self.full_size_steps(), 3),
        }


def resampled_frames(source_frames: int, source_fps: float, fps: float) -> int:
    """How many frames a clip of ``source_frames`` at ``source_fps`` keeps at ``fps`` (0: the source's
    rate): one at each 1/fps seconds from the start."""
    if not fps or fps >= source_fps:
        return source_frames
    duration = source_frames / source_fps
    return max(1, math.ceil(duration * fps - 1e-9))


def plan_video(
    content: Size,
    styles: Sequence[Size],
    options: StyleOptions,
    frames: int,
    fps: float,
    *,
    masks: Sequence[MaskInput | None] | None = None,
    limits: Limits = Limits(),
) -> VideoPlan:
    """The plan of a clip of ``frames`` frames of ``content`` size at ``fps`` (the output's rate)."""
    untiled = Limits(max_tile_pixels=0, max_styles=limits.max_styles)
    first = plan_run(content, styles, options, masks=masks, limits=untiled)
    height, width = first.height, first.width
    if _over(limits.max_tile_pixels, height * width):
        first = dataclasses.replace(first, notes=(*first.notes, UNTILED_VIDEO_NOTE))
    refusals = [Refusal("content", "a video needs at least one frame")] if frames < 1 else []
    if refusals:
        first = dataclasses.replace(first, refusals=(*first.refusals, *refusals))
    later_options = dataclasses.replace(options, iterations=options.frame_steps())
    later = plan_run(content, styles, later_options, masks=masks, limits=untiled)
    return VideoPlan(first=first, later=later, frames=max(frames, 0), fps=fps)
