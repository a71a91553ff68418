"""A worker process's warm state: the VGG19 feature extractor, built when the process starts (not on
its first job), and with it the compiled steps of the image sizes it ran last and the style targets
of the paintings it has seen (a byte-bounded cache, ATELIER_STYLE_TARGET_CACHE_MB).

Each extractor has a bounded StepCache (worker/engine/steps.py, steps_for): a job of a size seen recently
starts its first step without tracing anything, and a worker that runs many sizes keeps at most
STEP_CACHE_SIZES sizes' graphs, so its memory stays bounded (docs/performance.md, "Warm worker").
TensorFlow is imported on first use only: a prefork parent never initialises it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.jobs import get_job_store
from core.settings import Settings, get_settings
from spec.options import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS

if TYPE_CHECKING:
    from worker.engine import FeatureExtractor
    from worker.engine.style_cache import StyleTargetCache

logger = logging.getLogger(__name__)

# Image sizes whose compiled steps a worker process keeps, per extractor: a Print ladder is 5 sizes
# (7 at 4096 px), and an LRU smaller than a job's sizes would miss every one of them, every job.
STEP_CACHE_SIZES = 8
EXTRACTORS_KEPT = 2  # layer choices (the default and the last other one) whose extractors are kept
_XLA = {"on": True, "off": False}  # "auto" (None): the engine decides by device
# The Celery node name, set by worker/celery_app.py before the pool starts: the key this process's
# engine reports under (for /readyz). Unset outside a Celery worker, where nobody asks.
WORKER_NAME_ENV = "ATELIER_WORKER_NAME"

_lock = threading.Lock()
_extractors: OrderedDict[tuple, FeatureExtractor] = OrderedDict()
_style_targets: StyleTargetCache | None = None


def extractor(
    settings: Settings | None = None,
    content_layers: Sequence[str] = DEFAULT_CONTENT_LAYERS,
    style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
) -> FeatureExtractor:
    """This process's extractor for the settings' weights, precision and XLA switch and a job's
    layers (built once; a build that fails is not remembered, so the next job tries again and
    reports the error). An extractor holds only the layers its jobs use, so other layer choices get
    their own, EXTRACTORS_KEPT at most (least recently used dropped)."""
    settings = settings or get_settings()
    key = (
        settings.weights, str(settings.model_dir), settings.weights_seed, settings.precision, settings.xla,
        tuple(content_layers), tuple(style_layers),
    )  # fmt: skip
    with _lock:  # a job arriving during the start-up warm-up waits for it instead of building twice
        if key in _extractors:
            _extractors.move_to_end(key)
        else:
            from worker.engine import load_extractor

            started = time.perf_counter()
            try:
                built = load_extractor(
                    weights=settings.weights,
                    model_dir=settings.model_dir,
                    seed=settings.weights_seed,
                    content_layers=content_layers,
                    style_layers=style_layers,
                    precision=settings.precision,
                    jit_compile=_XLA.get(settings.xla),
                    step_cache_size=STEP_CACHE_SIZES,
                )
            except Exception as error:
                _report_engine(str(error) or type(error).__name__)
                raise
            _report_engine(None, built.weights, built.precision)
            logger.info(
                "VGG19 extractor ready in %.1f s: weights %s, precision %s (ATELIER_PRECISION=%s), XLA %s, "
                "compiled steps kept for %d image sizes",
                time.perf_counter() - started, built.weights, built.precision, settings.precision,
                "on" if built.jit_compile else "off", STEP_CACHE_SIZES,
            )  # fmt: skip
            _extractors[key] = built
            while len(_extractors) > EXTRACTORS_KEPT:
                _extractors.popitem(last=False)
        return _extractors[key]


def _report_engine(error: str | None, weights: str = "", precision: str = "") -> None:
    """Tell the job store whether this worker's engine loaded (so /readyz and the upload page can say
    why jobs would fail before anyone uploads); a store that cannot be reached is only logged."""
    name = os.environ.get(WORKER_NAME_ENV)
    if not name:
        return
    try:
        get_job_store().set_worker_engine(name, error, weights, precision)
    except Exception as report_error:
        logger.warning("worker %s: could not report its engine's state: %s", name, report_error)


def style_targets(settings: Settings | None = None) -> StyleTargetCache | None:
    """This process's style target cache (worker/engine/style_cache.py), ATELIER_STYLE_TARGET_CACHE_MB
    large, shared by all its jobs and extractors (its keys name the network); None when set to 0."""
    global _style_targets
    settings = settings or get_settings()
    bound = settings.style_target_cache_mb * 2**20
    with _lock:
        if bound and (_style_targets is None or _style_targets.max_bytes != bound):
            from worker.engine.style_cache import StyleTargetCache

            _style_targets = StyleTargetCache(bound)
        return _style_targets if bound else None


def warm_up_in_background() -> threading.Thread:
    """Build the extractor in a thread, so the process answers its parent (Celery's prefork waits a
    few seconds for a new child) while TensorFlow loads; a failure is logged, the first job retries."""

    def build() -> None:
        try:
            extractor()
        except Exception:
            logger.exception("warm-up failed; the first job builds the extractor again and reports why")

    thread = threading.Thread(target=build, name="atelier-warm-up", daemon=True)
    thread.start()
    return thread
