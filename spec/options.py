"""StyleOptions: every tunable of one style-transfer run, declared once with its help and bounds.

This module is the option schema of the whole product: the API and form model (core/options.py),
the CLI flags and their help (worker/cli.py), the page's Advanced panel and Settings list and the
options table in docs/options.md are all derived from ``option_specs()``. It imports only the
standard library, so the web can read it without loading TensorFlow.

Defaults follow the TensorFlow style-transfer tutorial (tensorflow/docs,
site/en/tutorials/generative/style_transfer.ipynb): images in [0, 1], Adam(learning_rate=0.02,
beta_1=0.99, epsilon=0.1), style_weight=1e-2, content_weight=1e4, total_variation_weight=30.
"""

from __future__ import annotations

import math
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Literal

from spec.errors import OptionsError

DEFAULT_CONTENT_LAYERS: tuple[str, ...] = ("block5_conv2",)
DEFAULT_STYLE_LAYERS: tuple[str, ...] = (
    "block1_conv1",
    "block2_conv1",
    "block3_conv1",
    "block4_conv1",
    "block5_conv1",
)
# VGG19's convolution layers, the ones content_layers and style_layers may name.
VGG19_CONV_LAYERS: tuple[str, ...] = tuple(
    f"block{block}_conv{conv}"
    for block, convs in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
    for conv in range(1, convs + 1)
)
OPTIMIZERS = ("adam", "lbfgs")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")  # load_extractor(precision=...)
INITS = ("content", "style", "noise")
COLORS = ("style", "luminance", "histogram")  # worker/engine/control.py
STYLE_LOSSES = ("gram", "mean_cov", "w2", "sliced_w")
POOLINGS = ("max", "average")
FRAME_INITS = ("previous", "content")  # worker/engine/video.py
MAX_FPS = 60.0
MIN_SIZE = 16
MIN_LADDER_START = 32  # px: a rung needs sides of at least MIN_SIZE, and below this the style is not learned
LADDER_RATIO = math.sqrt(2)  # the most a ladder rung's side grows over the one before
MAX_STYLE_SCALE = 4.0  # a style image 4x the content's size is already 16x its memory


@dataclass(frozen=True)
class OptionSpec:
    """One option as every interface sees it."""

    name: str  # the StyleOptions field
    public: str  # its name in the API, the form, the job record and (dashed) on the command line
    kind: Literal["int", "float", "bool", "choice", "floats", "names"]
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    above_minimum: bool = False  # the minimum itself is not allowed
    choices: tuple[str, ...] = ()  # for "choice", and the allowed items of "names"
    # The older name of another option's value (kept for clients and the CLI): the page shows only
    # the option it stands for, so the two can never be set against each other there.
    alias_of: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.public.replace("_", "-")

    def describe_default(self) -> str:
        """The default as a person reads it (help texts, docs)."""
        if self.default is None:
            return "none"
        if isinstance(self.default, tuple):
            return ",".join(_format_number(item) for item in self.default)
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        return _format_number(self.default)


def _format_number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _option(default: Any, help: str, **info: Any) -> Any:
    """A StyleOptions field with its schema entry (help, bounds, public name)."""
    return field(default=default, metadata={"option": {"help": help, **info}})


@dataclass(frozen=True)
class StyleOptions:
    max_size: int = _option(
        512,
        "Longest side of the output in pixels; larger content images are scaled down.",
        public="size",
        minimum=32,
    )
    iterations: int = _option(1000, "Optimisation steps.", minimum=1)
    init: Literal["content", "style", "noise"] = _option(
        "content",
        "Starting image: the content photo, the (first) style image or random noise.",
        choices=INITS,
    )
    seed: int = _option(
        0,
        "Seed of the random start (init noise); the same seed and settings give the same picture.",
        minimum=0,
        maximum=2**31 - 1,
    )
    style_scale: float = _option(
        1.0,
        "Size of the style image relative to the output: larger gives bigger brush strokes.",
        minimum=0,
        above_minimum=True,
        maximum=MAX_STYLE_SCALE,
    )
    colors: Literal["style", "luminance", "histogram"] = _option(
        "style",
        "Colours of the result: style (the style image's), luminance (only the luminance is "
        "stylized, the photo's colours kept) or histogram (the style image's colours matched to the "
        "photo's before the transfer).",
        choices=COLORS,
    )
    # The older name of colors=luminance, kept for existing clients; the two always agree.
    preserve_colors: bool = _option(
        False,
        "Keep the content's colours: only the luminance is stylized (the same as colors=luminance).",
        alias_of="colors",
    )
    style_blend: tuple[float, ...] | None = _option(
        None,
        "One weight (>= 0) per style image, comma separated, e.g. 0.7,0.3; equal weights if empty.",
        minimum=0,
    )
    content_weight: float = _option(
        1e4,
        "Weight of the content loss: higher keeps more of the photo.",
        minimum=0,
    )
    style_weight: float = _option(
        1e-2,
        "Weight of the style loss: higher paints more texture over the photo.",
        minimum=0,
    )
    tv_weight: float = _option(
        30.0,
        "Weight of the total-variation loss: higher gives smoother, less noisy results.",
        minimum=0,
    )
    style_loss: Literal["gram", "mean_cov", "w2", "sliced_w"] = _option(
        "gram",
        "What of the style image's features is matched: gram (their Gram matrices, Gatys), mean_cov "
        "(their means and covariances, apart), w2 (the distance between their bell curves, "
        "Wasserstein-2; often cleaner textures, a little slower) or sliced_w (their whole "
        "distributions, compared along random directions; no masks, slowest).",
        choices=STYLE_LOSSES,
    )
    style_layer_weights: tuple[float, ...] | None = _option(
        None,
        "One weight (>= 0) per style layer, comma separated, shallow to deep (e.g. 4,2,1,1,1 for finer "
        "texture); equal if empty.",
        minimum=0,
    )
    optimizer: Literal["adam", "lbfgs"] = _option(
        "adam",
        "adam changes the picture steadily; lbfgs often needs fewer steps.",
        choices=OPTIMIZERS,
    )
    learning_rate: float = _option(
        0.02,
        "Adam's step size (images in [0, 1]).",
        minimum=0,
        above_minimum=True,
        maximum=1,
    )
    beta_1: float = _option(0.99, "Adam's first-moment decay.", minimum=0, maximum=0.999)
    epsilon: float = _option(
        0.1,
        "Adam's epsilon (the tutorial's 0.1 damps early steps).",
        minimum=0,
        above_minimum=True,
        maximum=10,
    )
    ema_decay: float = _option(
        0.0,
        "Decay of an exponential moving average of Adam's images, used for the output and previews "
        "(less noise), e.g. 0.95; 0: off; L-BFGS ignores it.",
        minimum=0,
        maximum=0.9999,
    )
    # Coarse-to-fine (spec/plan.py): the image is upsampled from size to size and Adam's state with it.
    scales: tuple[float, ...] = _option(
        (1.0,),
        "Coarse-to-fine sizes relative to size, increasing and ending with 1, e.g. 0.25,0.5,1; "
        "the steps are split equally between them (ladder_start is the other way).",
        minimum=0,
        above_minimum=True,
        maximum=1,
    )
    ladder_start: int = _option(
        0,
        "Coarse-to-fine ladder: the longest side (px) of its first rung, where the style is learned "
        "(256-512 works well); the rungs rise by at most √2 to size, Adam's state carries over from rung "
        "to rung, and every rung gets about the same work (a rung of twice the pixels, half the steps). "
        "0: off.",
        minimum=0,
    )
    content_layers: tuple[str, ...] = _option(
        DEFAULT_CONTENT_LAYERS,
        "VGG19 layers whose features the content loss compares, comma separated.",
        choices=VGG19_CONV_LAYERS,
    )
    style_layers: tuple[str, ...] = _option(
        DEFAULT_STYLE_LAYERS,
        "VGG19 layers whose Gram matrices the style loss compares, comma separated.",
        choices=VGG19_CONV_LAYERS,
    )
    pooling: Literal["max", "average"] = _option(
        "max",
        "VGG19's pooling: max (as trained) or average (scaled by 2; often smoother textures).",
        choices=POOLINGS,
    )
    preview_every: int = _option(0, "Steps between previews; 0: none.", minimum=0)
    # Video (docs/video.md): frames are optimised in order, each later one from the one before.
    fps: float = _option(
        0.0,
        "Video: frames per second of the result, at most the source's (frames are dropped to reach it); "
        "0: the source's rate.",
        minimum=0,
        maximum=MAX_FPS,
    )
    temporal_weight: float = _option(
        1e3,
        "Video: weight of the temporal loss, the squared difference of each frame to the previous "
        "stylised frame warped by the optical flow, where the flow is consistent; higher flickers less; "
        "0: off.",
        minimum=0,
    )
    frame_init: Literal["previous", "content"] = _option(
        "previous",
        "Video: what each frame after the first starts from: previous (the previous stylised frame "
        "warped by the optical flow) or content (the frame itself, as a still).",
        choices=FRAME_INITS,
    )
    frame_iterations: int = _option(
        0,
        "Video: optimisation steps of each frame after the first (the first gets iterations); "
        "0: half the iterations.",
        minimum=0,
    )

    def __post_init__(self) -> None:
        for spec in option_specs():
            value = getattr(self, spec.name)
            if spec.kind in ("floats", "names") and isinstance(value, list):
                object.__setattr__(self, spec.name, tuple(value))  # accept lists, keep the dataclass hashable
        self._validate()
        self._alias_colors()

    def _alias_colors(self) -> None:
        """preserve_colors is colors=luminance under its older name: make the two agree."""
        if self.preserve_colors and self.colors == "histogram":
            raise OptionsError("preserve_colors (colors=luminance) cannot go with colors=histogram")
        if self.preserve_colors:
            object.__setattr__(self, "colors", "luminance")
        object.__setattr__(self, "preserve_colors", self.colors == "luminance")

    def _validate(self) -> None:
        for spec in option_specs():
            _check(spec, getattr(self, spec.name))
        _require(
            self.content_weight + self.style_weight > 0, "content_weight and style_weight cannot both be 0"
        )
        _require(self.beta_1 < 1, "beta_1 must be below 1")
        _require(
            all(a < b for a, b in zip(self.scales, self.scales[1:], strict=False)) and self.scales[-1] == 1,
            "scales must be increasing numbers in (0, 1] ending with 1, e.g. 0.25,0.5,1",
        )
        _require(
            self.ladder_start == 0 or self.ladder_start >= MIN_LADDER_START,
            f"ladder_start must be 0 (off) or at least {MIN_LADDER_START} px",
        )
        _require(
            self.ladder_start == 0 or self.scales == (1.0,),
            "ladder_start cannot be set with scales (two ways to go coarse to fine): set one of them",
        )
        if self.style_blend is not None:
            _require(sum(self.style_blend) > 0, "style_blend needs at least one weight above 0")
            _require(math.isfinite(sum(self.style_blend)), "style_blend's weights must have a finite sum")
        if self.style_layer_weights is not None:
            _require(
                len(self.style_layer_weights) == len(self.style_layers),
                f"style_layer_weights needs one weight per style layer ({len(self.style_layers)})",
            )
            _require(
                sum(self.style_layer_weights) > 0, "style_layer_weights needs at least one weight above 0"
            )

    @classmethod
    def from_public(cls, values: dict[str, Any]) -> StyleOptions:
        """Options from public names (a job record, a form): engine defaults for what is absent or None."""
        given = {
            spec.name: values[spec.public] for spec in option_specs() if values.get(spec.public) is not None
        }
        return cls(**given)

    def to_public(self) -> dict[str, Any]:
        """Every option under its public name, JSON-ready (tuples as lists)."""
        return {spec.public: _jsonable(getattr(self, spec.name)) for spec in option_specs()}

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

    def frame_steps(self) -> int:
        """The steps of a video frame after the first: frame_iterations, or half the iterations."""
        return self.frame_iterations or max(1, self.iterations // 2)

    def normalized_layer_weights(self) -> tuple[float, ...]:
        """Per-style-layer weights summing to 1 (equal: 1 / number of layers, as in the tutorial)."""
        weights = self.style_layer_weights or (1.0,) * len(self.style_layers)
        total = sum(weights)
        return tuple(w / total for w in weights)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise OptionsError(message)


def option_specs() -> tuple[OptionSpec, ...]:
    """The option schema: one entry per StyleOptions field, in declaration order."""
    return _SPECS


def _build_specs() -> tuple[OptionSpec, ...]:
    hints = typing.get_type_hints(StyleOptions)
    specs = []
    for item in fields(StyleOptions):
        info = dict(item.metadata["option"])
        public = info.pop("public", item.name)
        default = item.default if item.default is not MISSING else None
        specs.append(
            OptionSpec(name=item.name, public=public, kind=_kind(hints[item.name]), default=default, **info)
        )
    return tuple(specs)


def _kind(hint: Any) -> str:
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if typing.get_origin(hint) is Literal:
        return "choice"
    if hint is bool:
        return "bool"
    if hint is int:
        return "int"
    if hint is float:
        return "float"
    inner = (
        typing.get_args(args[0]) if typing.get_origin(hint) is not tuple and args else typing.get_args(hint)
    )
    return "floats" if inner and inner[0] is float else "names"


def _check(spec: OptionSpec, value: Any) -> None:
    """Type, bounds and choices of one option, with a message naming it."""
    if spec.kind in ("floats", "names"):
        if value is None and spec.default is None:
            return
        _require(isinstance(value, tuple) and len(value) > 0, f"{spec.name} needs at least one item")
        for item in value:
            _check_item(spec, item)
        return
    _check_item(spec, value)


def _check_item(spec: OptionSpec, value: Any) -> None:
    if spec.kind == "bool":
        _require(isinstance(value, bool), f"{spec.name} must be true or false")
        return
    if spec.kind in ("choice", "names"):
        _require(
            value in spec.choices, f"{spec.name} must be one of {', '.join(spec.choices)} (got {value!r})"
        )
        return
    integral = spec.kind == "int"
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    _require(
        is_number and (isinstance(value, int) if integral else math.isfinite(value)),
        f"{spec.name} must be {'an integer' if integral else 'a finite number'}",
    )
    if spec.minimum is not None:
        low_ok = value > spec.minimum if spec.above_minimum else value >= spec.minimum
        _require(
            low_ok,
            f"{spec.name} must be {'>' if spec.above_minimum else '>='} {_format_number(spec.minimum)}",
        )
    if spec.maximum is not None:
        _require(value <= spec.maximum, f"{spec.name} must be <= {_format_number(spec.maximum)}")


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


_SPECS = _build_specs()
