"""StyleOptions: every tunable of one style-transfer run, validated once, in one frozen dataclass.

Defaults follow the TensorFlow style-transfer tutorial (tensorflow/docs,
site/en/tutorials/generative/style_transfer.ipynb): images in [0, 1], Adam(learning_rate=0.02,
beta_1=0.99, epsilon=0.1), style_weight=1e-2, content_weight=1e4, total_variation_weight=30.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from worker.engine.errors import OptionsError

DEFAULT_CONTENT_LAYERS: tuple[str, ...] = ("block5_conv2",)
DEFAULT_STYLE_LAYERS: tuple[str, ...] = (
    "block1_conv1",
    "block2_conv1",
    "block3_conv1",
    "block4_conv1",
    "block5_conv1",
)
OPTIMIZERS = ("adam", "lbfgs")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")  # load_extractor(precision=...)
INITS = ("content", "style", "noise")
MIN_SIZE = 16
MAX_STYLE_SCALE = 4.0  # a style image 4x the content's size is already 16x its memory


@dataclass(frozen=True)
class StyleOptions:
    max_size: int = 512  # longest side of the output; larger content images are scaled down
    iterations: int = 1000
    optimizer: Literal["adam", "lbfgs"] = "adam"
    content_weight: float = 1e4
    style_weight: float = 1e-2
    tv_weight: float = 30.0
    style_blend: tuple[float, ...] | None = None  # one weight per style image; None = equal
    content_layers: tuple[str, ...] = DEFAULT_CONTENT_LAYERS
    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
    style_layer_weights: tuple[float, ...] | None = None  # one per style layer; None = equal
    init: Literal["content", "style", "noise"] = "content"
    seed: int = 0
    preserve_colors: bool = False  # keep the content's colours: only luminance is stylized
    style_scale: float = 1.0  # style images' longest side relative to the content's
    preview_every: int = 0  # 0 = no previews
    learning_rate: float = 0.02
    beta_1: float = 0.99
    epsilon: float = 0.1
    # Coarse-to-fine: sizes relative to max_size, increasing, ending at 1.0; the iterations are split
    # equally between them (the remainder goes to the full size), the image upsampled in between.
    scales: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        for name in ("style_blend", "content_layers", "style_layers", "style_layer_weights", "scales"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))  # accept lists, keep the dataclass hashable
        self._validate()

    def _validate(self) -> None:
        _require(
            isinstance(self.max_size, int) and self.max_size >= MIN_SIZE, f"max_size must be >= {MIN_SIZE}"
        )
        _require(isinstance(self.iterations, int) and self.iterations >= 1, "iterations must be >= 1")
        _require(self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        _require(self.init in INITS, f"init must be one of {', '.join(INITS)}")
        for name in ("content_weight", "style_weight", "tv_weight"):
            _require(_is_non_negative(getattr(self, name)), f"{name} must be a finite number >= 0")
        _require(
            self.content_weight + self.style_weight > 0, "content_weight and style_weight cannot both be 0"
        )
        _require(
            _is_positive(self.style_scale) and self.style_scale <= MAX_STYLE_SCALE,
            f"style_scale must be a number > 0 and <= {MAX_STYLE_SCALE}",
        )
        _require(_is_positive(self.learning_rate), "learning_rate must be a finite number > 0")
        _require(0 <= self.beta_1 < 1, "beta_1 must be in [0, 1)")
        _require(_is_positive(self.epsilon), "epsilon must be a finite number > 0")
        _require(isinstance(self.seed, int) and self.seed >= 0, "seed must be an integer >= 0")
        _require(
            isinstance(self.preview_every, int) and self.preview_every >= 0, "preview_every must be >= 0"
        )
        _require(
            bool(self.scales)
            and all(_is_positive(scale) and scale <= 1 for scale in self.scales)
            and all(a < b for a, b in zip(self.scales, self.scales[1:], strict=False))
            and self.scales[-1] == 1,
            "scales must be increasing numbers in (0, 1] ending with 1.0, e.g. (0.25, 0.5, 1.0)",
        )
        _require(bool(self.content_layers), "content_layers cannot be empty")
        _require(bool(self.style_layers), "style_layers cannot be empty")
        if self.style_blend is not None:
            _require(
                bool(self.style_blend)
                and all(_is_non_negative(w) for w in self.style_blend)
                and sum(self.style_blend) > 0,
                "style_blend weights must be numbers >= 0 with a positive sum",
            )
        if self.style_layer_weights is not None:
            _require(
                len(self.style_layer_weights) == len(self.style_layers),
                f"style_layer_weights needs one weight per style layer ({len(self.style_layers)})",
            )
            _require(
                all(_is_non_negative(w) for w in self.style_layer_weights)
                and sum(self.style_layer_weights) > 0,
                "style_layer_weights must be numbers >= 0 with a positive sum",
            )

    def normalized_blend(self, style_count: int) -> tuple[float, ...]:
        """Blend weights for ``style_count`` style images, summing to 1."""
        if self.style_blend is None:
            return (1.0 / style_count,) * style_count
        if len(self.style_blend) != style_count:
            raise OptionsError(
                f"style_blend has {len(self.style_blend)} weights for {style_count} style image(s)"
            )
        total = sum(self.style_blend)
        return tuple(w / total for w in self.style_blend)

    def normalized_layer_weights(self) -> tuple[float, ...]:
        """Per-style-layer weights summing to 1 (equal: 1 / number of layers, as in the tutorial)."""
        weights = self.style_layer_weights or (1.0,) * len(self.style_layers)
        total = sum(weights)
        return tuple(w / total for w in weights)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise OptionsError(message)


def _is_non_negative(value: object) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    )


def _is_positive(value: object) -> bool:
    return _is_non_negative(value) and value > 0  # type: ignore[operator]
