"""The engine's exceptions: every one is a ValueError whose message says what to do about it."""

from __future__ import annotations


class EngineError(ValueError):
    """Base class of every error the engine raises on purpose."""


class ImageError(EngineError):
    """An image could not be read, or is unusable (empty, truncated, too small)."""


class WeightsError(EngineError):
    """The VGG19 weights could not be found, downloaded or loaded."""


class OptionsError(EngineError):
    """A style-transfer option is out of range or inconsistent."""
