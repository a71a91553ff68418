"""The upload form's option fields and the job page's Settings list, derived from the option schema.

Each option of the schema (spec/options.py, read through core.options) becomes one input in the
Advanced panel, grouped and labelled as PAGE_LABELS says (the page's words, not the schema's), and one
line in a job's Settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from pydantic import create_model, model_validator

from core.options import SERVICE_DEFAULTS, JobOptionsIn, OptionSpec, option_specs
from core.settings import Settings

# Each option"s label and group on the page (the Advanced panel, in the groups" order, and the Settings list).
PAGE_LABELS: dict[str, tuple[str, str]] = {
    "size": ("Size (longest side, px)", "Picture"),
    "iterations": ("Iterations (steps)", "Picture"),
    "init": ("Start from", "Picture"),
    "seed": ("Seed", "Picture"),
    "style_scale": ("Brush-stroke size (style scale)", "Picture"),
    "colors": ("Colours", "Picture"),
    "preserve_colors": ("Preserve the photo's colours", "Picture"),
    "style_blend": ("Style mix", "Picture"),
    "content_weight": ("Content weight", "Loss weights"),
    "style_weight": ("Style strength (style weight)", "Loss weights"),
    "tv_weight": ("Smoothness (total-variation weight)", "Loss weights"),
    "style_loss": ("Style loss", "Loss weights"),
    "style_layer_weights": ("Style layer weights", "Loss weights"),
    "optimizer": ("Optimiser", "Optimiser"),
    "learning_rate": ("Learning rate", "Optimiser"),
    "beta_1": ("Adam beta 1", "Optimiser"),
    "epsilon": ("Adam epsilon", "Optimiser"),
    "ema_decay": ("Averaging of the steps (EMA decay)", "Optimiser"),
    "scales": ("Coarse-to-fine scales", "Optimiser"),
    "ladder_start": ("Ladder start (px)", "Optimiser"),
    "content_layers": ("Content layers", "Layers"),
    "style_layers": ("Style layers", "Layers"),
    "pooling": ("Pooling", "Layers"),
    "preview_every": ("Preview every (steps)", "Previews"),
    "fps": ("Frames per second (0: the video's)", "Video"),
    "temporal_weight": ("Temporal consistency (temporal weight)", "Video"),
    "frame_init": ("Each later frame starts from", "Video"),
    "frame_iterations": ("Steps per later frame (0: half)", "Video"),
}

# Options the page sets elsewhere than in the Advanced panel (the style-mix slider).
OWN_CONTROLS = frozenset({"style_blend"})


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    help: str
    kind: str  # "number", "choice", "checkbox" or "list"
    placeholder: str = ""
    minimum: float | None = None
    maximum: float | None = None
    step: str = "any"
    choices: tuple[str, ...] = ()
    default: str = ""


def option_groups(settings: Settings) -> list[tuple[str, list[FormField]]]:
    """The Advanced panel: (group title, fields) in the schema's order."""
    groups: dict[str, list[FormField]] = {}
    for spec in option_specs():
        if spec.public not in OWN_CONTROLS and spec.alias_of is None:
            groups.setdefault(PAGE_LABELS[spec.public][1], []).append(_form_field(spec, settings))
    return list(groups.items())


def _form_field(spec: OptionSpec, settings: Settings) -> FormField:
    label = PAGE_LABELS[spec.public][0]
    service_default = SERVICE_DEFAULTS.get(spec.public)
    default = service_default or spec.describe_default()
    limits = {"size": settings.max_size, "iterations": settings.max_iterations}
    maximum = limits.get(spec.public, spec.maximum)
    if spec.kind == "bool":
        return FormField(spec.public, label, spec.help, "checkbox")
    if spec.kind == "choice":
        return FormField(spec.public, label, spec.help, "choice", choices=spec.choices, default=default)
    help_text = f"{spec.help} Empty: {default}."
    if spec.kind in ("floats", "names"):
        return FormField(spec.public, label, help_text, "list", placeholder=default)
    placeholder = "from preset" if spec.public in ("size", "iterations") else default
    if spec.public == "preview_every":
        placeholder = str(settings.preview_every)
    return FormField(
        spec.public, label, help_text, "number", placeholder=placeholder, minimum=spec.minimum,
        maximum=maximum, step="1" if spec.kind == "int" else "any",
    )  # fmt: skip


def settings_rows(options: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A job's Settings list: (label, value) for the quality preset and every option it ran with."""
    rows = [("Quality", str(options.get("preset") or "custom").capitalize())]
    for spec in option_specs():
        if spec.alias_of is not None:
            continue  # its value is shown under the option it stands for
        rows.append((PAGE_LABELS[spec.public][0], _shown(spec, options.get(spec.public))))
    return rows


def _shown(spec: OptionSpec, value: Any) -> str:
    if value is None:
        return "default"
    if spec.kind == "bool":
        return "yes" if value else "no"
    return _text(value).replace(",", ", ")


def _text(value: Any) -> str:
    """An option value as a form field holds it: numbers short, lists comma separated."""
    if isinstance(value, list | tuple):
        return ",".join(_text(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def form_values(options: Mapping[str, Any]) -> dict[str, str]:
    """A job's options as the upload form's field values (lists comma separated, unset left out)."""
    values = {"preset": str(options.get("preset") or "")}
    for spec in option_specs():
        if options.get(spec.public) is not None and spec.alias_of is None:
            values[spec.public] = _text(options[spec.public])
    return {name: text for name, text in values.items() if text}  # False and empty lists: unset


def same_settings_url(options: Mapping[str, Any]) -> str:
    """The upload page with the form filled in with these options ("same settings again")."""
    return "/?" + urlencode(form_values(options))


def form_values_from_query(query: Mapping[str, str]) -> dict[str, str]:
    """The upload form's values from a "same settings again" link: known option names only."""
    known = {spec.public for spec in option_specs()} | {"preset"}
    return {name: value for name, value in query.items() if name in known}


def strict_form_options(name: str, doc: str, other_fields: frozenset[str]) -> type[JobOptionsIn]:
    """JobOptionsIn that refuses a form field that is neither an option nor one of ``other_fields``
    (422, "unknown field(s): ..."). FastAPI hands a form model every field of the form it parsed (the
    file parts included), so a typo such as `iteration` is refused while the one parsed form is
    validated instead of being dropped silently."""

    def no_unknown_fields(fields: Any) -> Any:
        if isinstance(fields, Mapping):
            unknown = sorted(set(fields) - set(JobOptionsIn.model_fields) - other_fields)
            if unknown:
                raise ValueError(f"unknown field(s): {', '.join(unknown)}")
        return fields

    return create_model(  # type: ignore[call-overload, no-any-return]
        name,
        __base__=JobOptionsIn,
        __doc__=doc,
        __validators__={"no_unknown_fields": model_validator(mode="before")(no_unknown_fields)},
    )
