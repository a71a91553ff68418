"""The style-transfer engine: pure TensorFlow/Keras, NumPy, SciPy and Pillow (no web, queue or Redis).

    from spec.options import StyleOptions
    from spec.plan import plan_run
    from worker.engine import Hooks, RunImages, load_extractor, stylize

    extractor = load_extractor(weights="imagenet", model_dir=Path("data/models"))  # once per process
    plan = plan_run(content.shape[:2], [style.shape[:2]], StyleOptions(iterations=200))
    result = stylize(plan, RunImages(content, [style]), extractor, Hooks(on_progress=print))

The engine executes a run plan (spec/plan.py); it decides nothing the plan decides. The names below
are imported on first use, so ``worker.engine.images`` and ``.hooks`` can be used (by the command
line, to check its inputs quickly) without loading TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.engine.hooks import Checkpoint, Hooks, Progress, RunImages
    from worker.engine.model import FeatureExtractor, load_extractor
    from worker.engine.optimize import StyleResult, stylize

_EXPORTS = {
    "Checkpoint": "worker.engine.hooks",
    "Hooks": "worker.engine.hooks",
    "Progress": "worker.engine.hooks",
    "RunImages": "worker.engine.hooks",
    "FeatureExtractor": "worker.engine.model",
    "load_extractor": "worker.engine.model",
    "StyleResult": "worker.engine.optimize",
    "stylize": "worker.engine.optimize",
}
__all__ = [
    "Checkpoint",
    "FeatureExtractor",
    "Hooks",
    "Progress",
    "RunImages",
    "StyleResult",
    "load_extractor",
    "stylize",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
