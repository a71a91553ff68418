"""What a run is given besides its plan and its extractor: the images, and the hooks it reports through.

    result = stylize(plan, RunImages(content, [style]), extractor, Hooks(on_progress=print))

One small hooks object carries everything a run reports or asks (progress, previews, checkpoints,
stop, resume), as crowsonkb/style-transfer-pytorch's ``STIterate`` callback does, instead of a dozen
keyword arguments. NumPy and Pillow only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from spec.options import StyleOptions
from spec.plan import Limits, MaskInput, RunPlan, plan_run
from worker.engine.images import is_black


@dataclass(frozen=True)
class Progress:
    step: int  # 1-based number of the step just taken
    total: int  # steps asked for
    loss: dict[str, float]  # weighted "total", "content", "style", "tv" of the image this step started from
    elapsed: float  # seconds since stylize() started


ProgressCallback = Callable[[Progress], None]
ImageCallback = Callable[[int, np.ndarray], None]  # (step, uint8 H x W x 3 image)
StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class RunImages:
    """The run's images as decoded (uint8 H x W x 3 RGB; masks greyscale or RGB, any size of the
    content's aspect ratio): the shapes its plan was made for."""

    content: np.ndarray
    styles: Sequence[np.ndarray]
    masks: Sequence[np.ndarray | None] | None = None  # one per style image (None: no mask), or None

    def plan(self, options: StyleOptions, limits: Limits | None = None) -> RunPlan:
        """The run plan (spec/plan.py) of these images: their shapes, and which masks are black."""
        masks = [
            None if mask is None else MaskInput(*np.shape(mask)[:2], black=is_black(mask))
            for mask in self.masks or ()
        ]
        styles = [style.shape[:2] for style in self.styles]
        return plan_run(self.content.shape[:2], styles, options, masks=masks, limits=limits or Limits())


@dataclass(frozen=True)
class Checkpoint:
    """Where a resumed run starts: the raw optimised image (uint8, before preserve_colors) after
    ``step`` steps, as ``Hooks.on_checkpoint`` gave it."""

    image: np.ndarray
    step: int


def _never() -> bool:
    return False


@dataclass(frozen=True)
class Hooks:
    """``on_progress`` after every step (throttle it yourself); ``on_preview`` every
    ``options.preview_every`` steps with the image a person would see; ``on_checkpoint`` every
    ``checkpoint_every`` steps with the raw image to resume from (``resume``); ``should_stop`` before
    every step: True ends the run with its partial image. ``label`` names the run in log lines."""

    on_progress: ProgressCallback | None = None
    on_preview: ImageCallback | None = None
    on_checkpoint: ImageCallback | None = None
    checkpoint_every: int = 0
    should_stop: StopCheck = field(default=_never)
    resume: Checkpoint | None = None
    label: str = "stylize"
