"""The VGG19 feature extractor: ImageNet (or seeded random) weights, only the layers a run uses.

The extractor takes float images in [0, 1], shape (batch, H, W, 3) RGB, and does VGG19's own
preprocessing (``keras.applications.vgg19.preprocess_input``: scale to 0..255, RGB -> BGR, subtract
the ImageNet mean) inside the model, so callers never see BGR or mean-subtracted pixels.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from spec.errors import OptionsError, WeightsError
from spec.options import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, PRECISIONS

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/vgg19/{WEIGHTS_FILE}"
WEIGHTS_MD5 = "253f8cb515780f3b799900260a226db6"  # the hash keras.applications.VGG19 checks
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


# VGG19 up to block5 in order: (layer name, output channels); 0 marks a 2x2 max pooling.
VGG19_LAYERS: tuple[tuple[str, int], ...] = tuple(
    (f"block{block}_{kind}", channels if kind != "pool" else 0)
    for block, (convs, channels) in enumerate(((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)), start=1)
    for kind in [*(f"conv{n}" for n in range(1, convs + 1)), "pool"]
)
# Computed in float32 under every precision: the first convolution sees the pixels themselves (0..255
# minus the mean), which bfloat16 would round to 0.5-1 grey level, more than an early Adam step
# changes them; it is 0.5% of a step's FLOPs.
FLOAT32_LAYERS: tuple[str, ...] = ("block1_conv1",)
PRECISION_SETTINGS = ("auto", *PRECISIONS)  # what load_extractor(precision=...) accepts


@keras.saving.register_keras_serializable(package="atelier")
class VGGPreprocess(keras.layers.Layer):
    """[0, 1] RGB -> VGG19 input: 0..255 BGR minus the ImageNet channel means."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        bgr = keras.ops.flip(inputs * 255.0, axis=-1)
        return bgr - keras.ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype=bgr.dtype)


@keras.saving.register_keras_serializable(package="atelier")
class ScaledAveragePooling(keras.layers.AveragePooling2D):
    """2x2 average pooling times 2, standing in for VGG19's max pooling (pooling="average").

    The average of a window of ReLU outputs is smaller than their maximum; the factor 2 (as in
    crowsonkb/style-transfer-pytorch) keeps the deeper layers' features of the same magnitude, so
    the loss weights mean about the same with either pooling.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(pool_size=2, strides=2, **kwargs)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return super().call(inputs) * 2.0


@dataclass(frozen=True, eq=False)
class FeatureExtractor:
    """VGG19's layers up to its deepest requested one; calling it gives {layer name: features}.

    Only those layers exist (no full VGG19 is kept). Under a mixed precision their weights are
    stored in the compute dtype (bfloat16 or float16), so there is no float32 copy of them and no
    per-step cast; the features returned are always float32. Identity-compared: stylize() keys its
    compiled steps on the extractor object (steps.steps_for).
    """

    model: keras.Model
    layers: tuple[str, ...]
    weights: str  # what the weights are, for logs: "imagenet", "random (seed 0)" or a path
    precision: str = "float32"  # convolutions' dtype: "float32", "mixed_bfloat16" or "mixed_float16"
    jit_compile: bool = False  # compile stylize()'s steps with XLA
    pooling: str = "max"  # "average": ScaledAveragePooling instead (control.with_pooling derives one)
    # How many image sizes' compiled steps stylize() keeps for this extractor (steps.StepCache,
    # made on first use); 0: none kept, each run compiles its own.
    step_cache_size: int = 0

    def __call__(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.model(images, training=False)


def load_extractor(
    weights: str | Path = "imagenet",
    model_dir: str | Path = Path("data/models"),
    seed: int = 0,
    content_layers: Sequence[str] = DEFAULT_CONTENT_LAYERS,
    style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
    *,
    precision: str = "float32",
    jit_compile: bool | None = None,
    step_cache_size: int = 4,
) -> FeatureExtractor:
    """Build the feature extractor for ``content_layers`` + ``style_layers``.

    ``weights`` is "imagenet" (the Keras file, looked up in ``model_dir`` and downloaded there when
    missing), "random" (seeded; the output is not art) or the path of a local weights file.
    ``precision`` is "float32", "mixed_bfloat16", "mixed_float16" or "auto" (``resolve_precision``:
    bfloat16 where the device computes it natively): the convolutions' dtype; features, Gram
    matrices and losses stay float32. ``jit_compile``: compile the optimisation steps with XLA;
    None = on when TensorFlow sees a GPU, off on CPU (no faster there, docs/performance.md).
    ``step_cache_size``: how many image sizes' compiled steps stylize() keeps (least recently used
    dropped first). Takes about a second; cache the result per process.
    """
    if precision not in PRECISION_SETTINGS:
        raise OptionsError(f"precision must be one of {', '.join(PRECISION_SETTINGS)}, not {precision!r}")
    if step_cache_size < 1:
        raise OptionsError(f"the step cache needs at least 1 entry, not {step_cache_size}")
    precision = resolve_precision(precision)
    wanted = tuple(dict.fromkeys([*content_layers, *style_layers]))  # ordered, without duplicates
    deepest = _check_layers(wanted)
    kernels = vgg19_kernels(weights, model_dir, seed, deepest)
    model = build_network(kernels, wanted, precision)
    jit = bool(tf.config.list_physical_devices("GPU")) if jit_compile is None else bool(jit_compile)
    return FeatureExtractor(
        model=model,
        layers=wanted,
        weights=describe_weights(weights, seed),
        precision=precision,
        jit_compile=jit,
        step_cache_size=step_cache_size,
    )


def resolve_precision(precision: str = "auto") -> str:
    """What "auto" stands for on this machine: "mixed_bfloat16" where the device computes bfloat16
    faster than float32 (a GPU of compute capability 8.0 or more, Ampere on; a CPU that
    ``cpu_prefers_bfloat16``), else "float32". Any other value is returned as it is."""
    if precision != "auto":
        return precision
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
        return "mixed_bfloat16" if capability and tuple(capability) >= (8, 0) else "float32"
    return "mixed_bfloat16" if cpu_prefers_bfloat16(*cpu_description()) else "float32"


def cpu_prefers_bfloat16(flags: set[str], vendor: str) -> bool:
    """AMX computes bfloat16 several times faster than float32; AVX512_BF16 alone does so on AMD's
    CPUs but is slower than float32 on an Intel Xeon that exposes no AMX (docs/performance.md)."""
    return "amx_bf16" in flags or ("avx512_bf16" in flags and vendor != "GenuineIntel")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none: not Linux)."""
    return cpu_description(cpuinfo)[0]


def cpu_description(cpuinfo: str | Path = "/proc/cpuinfo") -> tuple[set[str], str]:
    """The CPU's feature flags and vendor id from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set(), ""
    flags: set[str] | None = None
    vendor = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key in ("flags", "Features") and flags is None:  # x86; ARM says Features
            flags = set(value.split())
        if flags is not None and vendor:
            break
    return flags or set(), vendor


def _check_layers(layers: Sequence[str]) -> str:
    """The deepest of ``layers``; OptionsError naming the valid ones when one is unknown."""
    available = [name for name, _ in VGG19_LAYERS]
    unknown = [name for name in layers if name not in available]
    if unknown:
        raise OptionsError(
            f"unknown VGG19 layer(s) {', '.join(unknown)}; valid names: {', '.join(available)}"
        )
    if not layers:
        raise OptionsError("at least one VGG19 layer is needed")
    return max(layers, key=available.index)


def _layers_to(deepest: str) -> list[tuple[str, int]]:
    names = [name for name, _ in VGG19_LAYERS]
    return list(VGG19_LAYERS[: names.index(deepest) + 1])


Kernels = dict[str, tuple[np.ndarray, np.ndarray]]  # conv layer -> (HWIO kernel, bias), float32


def vgg19_kernels(weights: str | Path, model_dir: str | Path, seed: int, deepest: str) -> Kernels:
    """The weights of VGG19's convolutions up to ``deepest``: seeded random ones drawn directly, or
    those of a weights file (loaded through Keras's VGG19, which is dropped afterwards)."""
    if str(weights) == "random":
        _warn_random(seed)
        return random_kernels(seed, deepest)
    vgg = load_vgg19(weights, model_dir, seed)
    kernels = {}
    for name, channels in _layers_to(deepest):
        if channels:
            kernel, bias = vgg.get_layer(name).get_weights()
            kernels[name] = (kernel, bias)
    del vgg
    gc.collect()  # the whole network's weights (block5_conv3/4 too) go now, not at some later cycle
    return kernels


def random_kernels(seed: int, deepest: str = "block5_conv4") -> Kernels:
    """Glorot-uniform kernels and zero biases (Keras's defaults), drawn from a seeded NumPy generator
    in VGG19's layer order: the same values as ``randomize_weights`` gives the whole network.

    A private generator, not keras.utils.set_random_seed, so building an extractor does not reseed
    the process's global random state.
    """
    rng = np.random.default_rng(seed)
    kernels, channels_in = {}, 3
    for name, channels in _layers_to(deepest):
        if not channels:
            continue
        fan_in, fan_out = 9 * channels_in, 9 * channels
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        kernel = rng.uniform(-limit, limit, (3, 3, channels_in, channels)).astype(np.float32)
        kernels[name], channels_in = (kernel, np.zeros(channels, np.float32)), channels
    return kernels


def build_network(
    kernels: Kernels, layers: Sequence[str], precision: str = "float32", pooling: str = "max"
) -> keras.Model:
    """A Keras model of VGG19's layers up to the deepest of ``layers``, returning their outputs by
    name (float32). Its convolutions hold ``kernels`` in the compute dtype of ``precision``;
    ``pooling`` is "max" (VGG19's) or "average" (ScaledAveragePooling)."""
    dtype = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}[precision]
    inputs = keras.Input(shape=(None, None, 3), name="image")
    # Preprocessing stays float32: bfloat16 would round the 0..255 pixel values to whole grey levels.
    features = VGGPreprocess(name="vgg19_preprocess")(inputs)
    outputs: dict[str, keras.KerasTensor] = {}
    for name, channels in _layers_to(_check_layers(layers)):
        if channels:
            layer = keras.layers.Conv2D(
                channels, 3, padding="same", activation="relu", name=name, trainable=False,
                dtype="float32" if name in FLOAT32_LAYERS else dtype,
            )  # fmt: skip
            layer.build((None, None, None, kernels[name][0].shape[2]))
            layer.set_weights([value.astype(layer.variable_dtype) for value in kernels[name]])
        elif pooling == "average":
            layer = ScaledAveragePooling(name=name, dtype=dtype)
        else:
            layer = keras.layers.MaxPooling2D(2, strides=2, name=name, dtype=dtype)
        features = layer(features)  # Keras casts the float32 pixels to the layer's dtype once, here
        if name in layers:
            outputs[name] = features if dtype == "float32" else keras.ops.cast(features, "float32")
    return keras.Model(inputs, outputs, name="vgg19_features")


def describe_weights(weights: str | Path, seed: int) -> str:
    return f"random (seed {seed})" if str(weights) == "random" else str(weights)


def load_vgg19(weights: str | Path, model_dir: str | Path, seed: int = 0) -> keras.Model:
    """The whole VGG19 without its classifier, with the requested weights."""
    vgg = _bare_vgg19()
    if str(weights) == "random":
        _warn_random(seed)
        randomize_weights(vgg, seed)
        return vgg
    if str(weights) == "imagenet":
        path = Path(model_dir) / WEIGHTS_FILE
        if not path.is_file():
            path = fetch_weights(model_dir)
    else:
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(
                f"weights file {path} does not exist; set ATELIER_WEIGHTS (or --weights) to an existing "
                f"{WEIGHTS_FILE}, to 'imagenet' or to 'random'"
            )
    _load_weights_file(vgg, path)
    return vgg


def _warn_random(seed: int) -> None:
    logger.warning(
        "VGG19 uses random weights (seed %d): the output shows the optimisation working but is not "
        "art; set ATELIER_WEIGHTS=imagenet for real style transfer",
        seed,
    )


def _bare_vgg19() -> keras.Model:
    return keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))


def _load_weights_file(vgg: keras.Model, path: Path) -> None:
    try:
        vgg.load_weights(str(path))
    except (OSError, ValueError) as error:
        raise WeightsError(
            f"{path} is not a usable VGG19 weights file ({error}); it should be Keras's {WEIGHTS_FILE}"
        ) from error
    logger.info("VGG19 weights loaded from %s", path)


def randomize_weights(vgg: keras.Model, seed: int) -> None:
    """Glorot-uniform kernels and zero biases (Keras's defaults), drawn from a seeded NumPy generator.

    A private generator, not keras.utils.set_random_seed, so building an extractor does not reseed
    the process's global random state.
    """
    rng = np.random.default_rng(seed)
    for layer in vgg.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        kernel, bias = layer.get_weights()
        receptive_field = kernel.shape[0] * kernel.shape[1]
        fan_in, fan_out = receptive_field * kernel.shape[2], receptive_field * kernel.shape[3]
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        layer.set_weights([rng.uniform(-limit, limit, kernel.shape).astype(np.float32), np.zeros_like(bias)])


def fetch_weights(model_dir: str | Path, origin: str | None = None) -> Path:
    """Download the ImageNet weights into ``model_dir`` (verifying their MD5) and return their path."""
    directory = Path(model_dir).expanduser().resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # Keras prints the download progress on stdout, which belongs to the caller (atelier --json).
        with contextlib.redirect_stdout(sys.stderr):
            path = keras.utils.get_file(
                WEIGHTS_FILE,
                origin=origin or WEIGHTS_URL,
                file_hash=WEIGHTS_MD5,
                cache_subdir=str(directory),  # an absolute cache_subdir is used as is
            )
    except Exception as error:  # get_file wraps network errors in a bare Exception
        raise WeightsError(
            f"the ImageNet weights {WEIGHTS_FILE} are not in {directory} and could not be downloaded "
            f"({error}). Put the file there (from {WEIGHTS_URL}), or set ATELIER_MODEL_DIR to the "
            f"directory that holds it, or set ATELIER_WEIGHTS to the file's path"
        ) from error
    logger.info("VGG19 ImageNet weights available at %s", path)
    return Path(path)
