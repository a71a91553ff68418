"""Engine runs from arrays, as the worker and the CLI make them: plan the images, then run the plan."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from spec.options import StyleOptions
from spec.plan import Limits
from worker.engine import Checkpoint, FeatureExtractor, Hooks, RunImages, StyleResult, stylize
from worker.engine.style_cache import StyleTargetCache


def stylize_arrays(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    options: StyleOptions | None = None,
    *,
    extractor: FeatureExtractor,
    masks: Sequence[np.ndarray | None] | None = None,
    max_tile_pixels: int = 0,
    start_image: np.ndarray | None = None,
    start_step: int = 0,
    style_cache: StyleTargetCache | None = None,
    **hooks: Any,
) -> StyleResult:
    """stylize() of these images' plan; ``hooks`` are Hooks' fields (on_progress, should_stop, ...),
    ``style_cache`` the style target cache (None: none)."""
    images = RunImages(content, styles, masks)
    plan = images.plan(options or StyleOptions(), Limits(max_tile_pixels=max_tile_pixels))
    resume = None if start_image is None else Checkpoint(start_image, start_step)
    return stylize(plan, images, extractor, Hooks(resume=resume, **hooks), style_cache=style_cache)
