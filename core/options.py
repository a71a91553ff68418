"""Job options as a client sends them (JobOptionsIn) and as a job record keeps them (resolve()).

Both are derived from the engine's option schema (spec.options.option_specs(), stdlib
only): one field per engine option under its public name, with the schema's type, bounds and
help. What the service adds is here: the quality presets, the size and iteration limits
(settings), the server's preview interval. Pydantic only, no FastAPI: the worker imports it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, field_validator

from core.settings import get_settings
from spec.options import OptionsError, OptionSpec, StyleOptions, option_specs
from spec.plan import RunPlan, plan_run

Preset = Literal["quick", "standard", "high", "print"]


@dataclass(frozen=True)
class QualityPreset:
    """A quality preset: the output side (px) and optimisation steps, and other options (public
    names) it sets when the client leaves them out."""

    size: int
    iterations: int
    options: Mapping[str, Any] = field(default_factory=dict)
    # A video's frames after the first start from the one before, so they need fewer steps: Ruder et
    # al. give them half (docs/video.md).
    frame_share: float = 0.5

    def frame_steps(self, iterations: int) -> int:
        """The steps of each video frame after the first, for a run of ``iterations`` steps."""
        return max(1, round(iterations * self.frame_share))

    def describe(self) -> str:
        start = self.options.get("ladder_start")
        ladder = f", coarse to fine from {start} px" if start else ""
        frames = f", {self.frame_steps(self.iterations)} for each later video frame"
        return f"{self.size} px, {self.iterations} steps{ladder}{frames}"


# VGG19 costs ~1 s per step at 256 px on a 2-core CPU and far less on a GPU, so "quick" is the only
# preset meant for CPU demos. A step costs in proportion to its pixels: "print" (for a GPU worker and
# ATELIER_MAX_SIZE of 2048 or more) climbs a ladder from 512 px, where the style is learned, to the
# full size by rungs √2 apart, each rung about the same work (spec/plan.py): 65 full-size steps' worth
# of work at 2048 px instead of 400. "high" climbs it too (512, 627, 768 px): at its shape and steps
# it ended 8% lower than one size in 63% of the time (docs/performance.md, bench/presets.py).
PRESETS: dict[str, QualityPreset] = {
    "quick": QualityPreset(256, 100),
    "standard": QualityPreset(512, 300),
    "high": QualityPreset(768, 500, {"ladder_start": 512}),
    "print": QualityPreset(2048, 400, {"ladder_start": 512}),
}
# Two ways to go coarse to fine: a preset's choice of one is not filled in when the client chose either.
COARSE_TO_FINE = ("ladder_start", "scales")
DEFAULT_PRESET: Preset = "quick"

# The service fills these when a client leaves them out (instead of the engine's defaults).
SERVICE_DEFAULTS = {
    "size": "the quality preset's size",
    "iterations": "the quality preset's steps",
    "preview_every": "ATELIER_PREVIEW_EVERY",
    "frame_iterations": "half the steps (the quality preset's share)",
}


class OptionValueError(ValueError):
    """An option that cannot be used: the message is about ``option`` (its public name)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


def _blank_to_none(value: Any) -> Any:
    """HTML forms send empty strings for untouched inputs: treat them as "not given"."""
    return None if isinstance(value, str) and not value.strip() else value


def _split_list(value: Any) -> Any:
    """Accept a list option as "0.7,0.3", as repeated form fields or as a JSON list."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple):
        parts: list[Any] = []
        for item in value:
            if isinstance(item, str):
                parts.extend(part.strip() for part in item.split(",") if part.strip())
            else:
                parts.append(item)
        return parts or None
    return value


def _bounds(spec: OptionSpec) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    if spec.minimum is not None:
        bounds["gt" if spec.above_minimum else "ge"] = spec.minimum
    if spec.maximum is not None:
        bounds["le"] = spec.maximum
    if spec.kind in ("float", "floats"):
        bounds["allow_inf_nan"] = False
    return bounds


def _description(spec: OptionSpec) -> str:
    default = SERVICE_DEFAULTS.get(spec.public, spec.describe_default())
    return f"{spec.help} Default: {default}."


def _field(spec: OptionSpec) -> tuple[Any, Any]:
    """One option's pydantic field: optional (None = the default), typed and bounded by the schema."""
    scalar: Any = {"int": int, "float": float, "bool": bool}.get(spec.kind)
    if spec.kind == "choice":
        scalar = Literal[spec.choices]  # type: ignore[valid-type]
    if scalar is not None:
        annotation: Any = Annotated[scalar | None, BeforeValidator(_blank_to_none)]
        return annotation, Field(None, description=_description(spec), **_bounds(spec))
    item: Any = (
        Annotated[float, Field(**_bounds(spec))] if spec.kind == "floats" else Literal[spec.choices]  # type: ignore[valid-type]
    )
    annotation = Annotated[list[item] | None, BeforeValidator(_split_list)]
    return annotation, Field(None, description=_description(spec), min_length=1)


class _JobOptionsBase(BaseModel):
    # Extra fields are ignored here because a form also carries the file fields; the JSON route
    # refuses unknown option names itself (see app/routes/jobs.py).
    model_config = ConfigDict(extra="ignore")

    preset: Annotated[Preset | None, BeforeValidator(_blank_to_none)] = Field(
        None,
        description=", ".join(f"{name} ({preset.describe()})" for name, preset in PRESETS.items())
        + ". Fills size and iterations when they are not given, capped to the server's limits, and for "
        "high and print ladder_start unless ladder_start or scales is given, and frame_iterations (a video's "
        "later frames) as half the steps; default quick.",
    )

    # The upper limits are settings, so they are checked here rather than in the schema.
    @field_validator("size", check_fields=False)
    @classmethod
    def _size_within_limit(cls, size: int | None) -> int | None:
        limit = get_settings().max_size
        if size is not None and size > limit:
            raise ValueError(f"must be at most {limit} pixels (ATELIER_MAX_SIZE)")
        return size

    @field_validator("iterations", check_fields=False)
    @classmethod
    def _iterations_within_limit(cls, iterations: int | None) -> int | None:
        limit = get_settings().max_iterations
        if iterations is not None and iterations > limit:
            raise ValueError(f"must be at most {limit} (ATELIER_MAX_ITERATIONS)")
        return iterations

    def resolve(self) -> dict[str, Any]:
        """What a job record keeps: every option under its public name, preset and defaults applied.

        The engine's own checks run here (cross-option rules such as increasing scales), so a job
        that would fail in the worker is refused at submission. Raises OptionValueError.
        """
        settings = get_settings()
        preset = self.preset or DEFAULT_PRESET
        chosen = PRESETS[preset]
        values = self.model_dump(exclude={"preset"})
        if values["size"] is None:
            values["size"] = min(chosen.size, settings.max_size)
        if values["iterations"] is None:
            values["iterations"] = min(chosen.iterations, settings.max_iterations)
        client_chose_coarse_to_fine = any(values[name] is not None for name in COARSE_TO_FINE)
        for name, value in chosen.options.items():
            if values[name] is None and not (name in COARSE_TO_FINE and client_chose_coarse_to_fine):
                values[name] = value
        if values["preview_every"] is None:
            values["preview_every"] = settings.preview_every
        if values["frame_iterations"] is None:
            values["frame_iterations"] = chosen.frame_steps(values["iterations"])
        try:
            options = StyleOptions.from_public(values)
        except OptionsError as error:
            raise _public_error(str(error)) from error
        return {"preset": preset, **options.to_public()}


def preset_plan(name: str, size: int, iterations: int) -> RunPlan:
    """The run plan of preset ``name`` for a square ``size`` px image and ``iterations`` steps (the
    upload page's estimates)."""
    values = {**PRESETS[name].options, "size": size, "iterations": iterations}
    return plan_run((size, size), [(size, size)], StyleOptions.from_public(values))


def _public_error(message: str) -> OptionValueError:
    """The engine names options by field (max_size); a client knows them by public name (size)."""
    for spec in sorted(option_specs(), key=lambda spec: -len(spec.name)):
        if message.startswith(spec.name):
            return OptionValueError(spec.public, message[len(spec.name) :].strip())
    return OptionValueError("options", message)


JobOptionsIn: type[_JobOptionsBase] = create_model(  # type: ignore[call-overload]
    "JobOptionsIn",
    __base__=_JobOptionsBase,
    __doc__="Options of a new job, as sent in the multipart form of POST /api/jobs (and the HTML form).",
    **{spec.public: _field(spec) for spec in option_specs()},
)
