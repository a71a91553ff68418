"""Job options as a client sends them (JobOptionsIn) and as a job record keeps them (resolved dict).

Pydantic only: the worker reads the resolved options back from the job store, so this module must
not import FastAPI.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from core.settings import get_settings

Preset = Literal["quick", "standard", "high"]

# Output side (px) and optimisation steps per preset. VGG19 costs ~1 s per step at 256 px on a
# 2-core CPU and far less on a GPU, so "quick" is the only preset meant for CPU demos.
PRESETS: dict[str, tuple[int, int]] = {
    "quick": (256, 100),
    "standard": (512, 300),
    "high": (768, 500),
}
DEFAULT_PRESET: Preset = "quick"


def _split_floats(value: Any) -> Any:
    """Accept style_blend as "0.7,0.3", as repeated form fields or as a JSON list."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple):
        parts: list[Any] = []
        for item in value:
            if isinstance(item, str):
                parts.extend(p.strip() for p in item.split(",") if p.strip())
            else:
                parts.append(item)
        return parts or None
    return value


def _blank_to_none(value: Any) -> Any:
    """HTML forms send empty strings for untouched number inputs: treat them as "not given"."""
    return None if isinstance(value, str) and not value.strip() else value


Weight = Annotated[
    float | None,
    BeforeValidator(_blank_to_none),
    Field(ge=0, allow_inf_nan=False),
]


class JobOptionsIn(BaseModel):
    """Options of a new job, as sent in the multipart form of POST /api/jobs (and the HTML form)."""

    # Extra fields are ignored here because a form also carries the file fields; the JSON route
    # refuses unknown option names itself (see app/routes/jobs.py).
    model_config = ConfigDict(extra="ignore")

    preset: Annotated[Preset | None, BeforeValidator(_blank_to_none)] = Field(
        None,
        description="quick (256 px, 100 steps), standard (512 px, 300 steps) or high (768 px, 500 steps). "
        "Fills size and iterations when they are not given; default quick.",
    )
    size: Annotated[int | None, BeforeValidator(_blank_to_none)] = Field(
        None, ge=32, description="Longest side of the output in pixels (32 .. ATELIER_MAX_SIZE)."
    )
    iterations: Annotated[int | None, BeforeValidator(_blank_to_none)] = Field(
        None, ge=1, description="Optimisation steps (1 .. ATELIER_MAX_ITERATIONS)."
    )
    content_weight: Weight = Field(None, description="Content loss weight (>= 0); engine default if empty.")
    style_weight: Weight = Field(None, description="Style loss weight (>= 0); engine default if empty.")
    tv_weight: Weight = Field(
        None, description="Weight of the total-variation (smoothness) loss (>= 0); engine default if empty."
    )
    preserve_colors: bool = Field(False, description="Keep the content image's colours (luminance transfer).")
    optimizer: Literal["adam", "lbfgs"] = Field("adam", description="adam or lbfgs.")
    style_blend: Annotated[
        list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None, BeforeValidator(_split_floats)
    ] = Field(
        None,
        description="One non-negative weight per style image, comma separated (e.g. '0.7,0.3'); "
        "equal weights if empty.",
    )
    preview_every: Annotated[int | None, BeforeValidator(_blank_to_none)] = Field(
        None, ge=0, description="Steps between live previews; 0: none; ATELIER_PREVIEW_EVERY if empty."
    )

    # The upper limits are settings, so they are checked here rather than in Field(le=...).
    @field_validator("size")
    @classmethod
    def _size_within_limit(cls, size: int | None) -> int | None:
        limit = get_settings().max_size
        if size is not None and size > limit:
            raise ValueError(f"must be at most {limit} pixels (ATELIER_MAX_SIZE)")
        return size

    @field_validator("iterations")
    @classmethod
    def _iterations_within_limit(cls, iterations: int | None) -> int | None:
        limit = get_settings().max_iterations
        if iterations is not None and iterations > limit:
            raise ValueError(f"must be at most {limit} (ATELIER_MAX_ITERATIONS)")
        return iterations

    @field_validator("style_blend")
    @classmethod
    def _blend_not_all_zero(cls, blend: list[float] | None) -> list[float] | None:
        if blend is None:
            return blend
        if not any(weight > 0 for weight in blend):
            raise ValueError("needs at least one weight above 0")
        # Each weight is finite, but their sum may not be (1e308,1e308): the engine divides by it.
        if not math.isfinite(sum(blend)):
            raise ValueError("the weights are too large: their sum must be a finite number")
        return blend

    @model_validator(mode="after")
    def _weights_not_all_zero(self) -> JobOptionsIn:
        if self.content_weight == 0 and self.style_weight == 0:
            raise ValueError("content_weight and style_weight cannot both be 0")
        return self

    def resolve(self, style_count: int) -> dict[str, Any]:
        """The options a job record keeps: preset applied, defaults filled, checked against the styles.

        Raises ValueError (with a message naming the option) when style_blend does not match the
        number of style images.
        """
        preset = self.preset or DEFAULT_PRESET
        preset_size, preset_iterations = PRESETS[preset]
        settings = get_settings()
        size = self.size if self.size is not None else min(preset_size, settings.max_size)
        iterations = self.iterations if self.iterations is not None else preset_iterations
        if self.style_blend is not None and len(self.style_blend) != style_count:
            raise ValueError(
                f"style_blend has {len(self.style_blend)} weights but {style_count} style image(s) were sent"
            )
        return {
            "preset": preset,
            "size": size,
            "iterations": min(iterations, settings.max_iterations),
            "content_weight": self.content_weight,
            "style_weight": self.style_weight,
            "tv_weight": self.tv_weight,
            "preserve_colors": self.preserve_colors,
            "optimizer": self.optimizer,
            "style_blend": self.style_blend,
            "preview_every": self.preview_every if self.preview_every is not None else settings.preview_every,
        }
