"""Checkpoints and resuming (worker crash recovery): the engine hands out its image every N steps and
continues from such an image at its step."""

from __future__ import annotations

import numpy as np
import pytest

from spec.errors import OptionsError
from spec.options import StyleOptions
from tests.engine.conftest import gradient, stripes
from tests.support.engine import stylize_arrays
from worker.engine.model import FeatureExtractor


def test_checkpoints_come_every_n_steps_and_a_resumed_run_does_only_the_rest(
    extractor: FeatureExtractor,
) -> None:
    options = StyleOptions(max_size=32, iterations=7)
    checkpoints: list[tuple[int, np.ndarray]] = []
    stylize_arrays(
        gradient(),
        [stripes()],
        options,
        extractor=extractor,
        on_checkpoint=lambda step, image: checkpoints.append((step, image)),
        checkpoint_every=3,
    )
    resumed_steps: list[int] = []
    step, image = checkpoints[-1]
    resumed = stylize_arrays(
        gradient(),
        [stripes()],
        options,
        extractor=extractor,
        on_progress=lambda progress: resumed_steps.append(progress.step),
        start_image=image,
        start_step=step,
    )

    assert [step for step, _ in checkpoints] == [3, 6]
    assert all(image.dtype == np.uint8 and image.shape == (32, 32, 3) for _, image in checkpoints)
    assert resumed_steps == [7]  # only the step after the checkpoint is done again
    assert resumed.steps == 7 and not resumed.stopped
    assert resumed.image.shape == (32, 32, 3)


def test_a_start_step_beyond_the_iterations_is_refused(extractor: FeatureExtractor) -> None:
    with pytest.raises(OptionsError, match="resumes from a step in"):
        stylize_arrays(
            gradient(),
            [stripes()],
            StyleOptions(max_size=32, iterations=5),
            extractor=extractor,
            start_image=gradient(32, 32),
            start_step=6,
        )
