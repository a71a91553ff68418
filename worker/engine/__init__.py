"""The style-transfer engine: pure TensorFlow/Keras, NumPy, SciPy and Pillow (no web, queue or Redis).

    from worker.engine import StyleOptions, stylize, load_extractor
    extractor = load_extractor(weights="imagenet", model_dir=Path("data/models"))  # once per process
    result = stylize(content, [style], StyleOptions(iterations=200), extractor=extractor)

The names below are imported on first use, so ``worker.engine.images``, ``.options`` and ``.errors``
can be used (by the command line, to check its inputs quickly) without loading TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spec.options import StyleOptions
    from worker.engine.model import FeatureExtractor, load_extractor
    from worker.engine.optimize import Progress, StyleResult, stylize

_EXPORTS = {
    "FeatureExtractor": "worker.engine.model",
    "load_extractor": "worker.engine.model",
    "Progress": "worker.engine.optimize",
    "StyleResult": "worker.engine.optimize",
    "stylize": "worker.engine.optimize",
    "StyleOptions": "spec.options",
}
__all__ = ["FeatureExtractor", "Progress", "StyleOptions", "StyleResult", "load_extractor", "stylize"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
