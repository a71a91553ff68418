"""The VGG19 feature extractor: ImageNet (or seeded random) weights, cut after the deepest layer used.

The extractor takes float images in [0, 1], shape (batch, H, W, 3) RGB, and does VGG19's own
preprocessing (``keras.applications.vgg19.preprocess_input``: scale to 0..255, RGB -> BGR, subtract
the ImageNet mean) inside the model, so callers never see BGR or mean-subtracted pixels.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from worker.engine.errors import OptionsError, WeightsError
from worker.engine.options import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, PRECISIONS

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/vgg19/{WEIGHTS_FILE}"
WEIGHTS_MD5 = "253f8cb515780f3b799900260a226db6"  # the hash keras.applications.VGG19 checks
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="atelier")
class VGGPreprocess(keras.layers.Layer):
    """[0, 1] RGB -> VGG19 input: 0..255 BGR minus the ImageNet channel means."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        bgr = keras.ops.flip(inputs * 255.0, axis=-1)
        return bgr - keras.ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype=bgr.dtype)


@dataclass(frozen=True)
class FeatureExtractor:
    """A VGG19 cut after its deepest requested layer; calling it gives {layer name: features}."""

    model: keras.Model
    layers: tuple[str, ...]
    weights: str  # what the weights are, for logs: "imagenet", "random (seed 0)" or a path
    precision: str = "float32"  # convolutions' dtype policy; the features returned are always float32
    jit_compile: bool = False  # compile stylize()'s steps with XLA

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
) -> FeatureExtractor:
    """Build the feature extractor for ``content_layers`` + ``style_layers``.

    ``weights`` is "imagenet" (the Keras file, looked up in ``model_dir`` and downloaded there when
    missing), "random" (seeded; the output is not art) or the path of a local weights file.
    ``precision`` is "float32", "mixed_bfloat16" or "mixed_float16": the convolutions' compute dtype
    (weights stay float32; features, Gram matrices and losses are float32). ``jit_compile``: compile
    the optimisation steps with XLA; None = on when TensorFlow sees a GPU, off on CPU (where XLA
    measured ~2x slower, docs/performance.md). Takes about a second; cache the result per process.
    """
    if precision not in PRECISIONS:
        raise OptionsError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    vgg = load_vgg19(weights, model_dir, seed)
    wanted = tuple(dict.fromkeys([*content_layers, *style_layers]))  # ordered, without duplicates
    extractor = cut_vgg19(vgg, wanted, describe_weights(weights, seed), precision)
    jit = bool(tf.config.list_physical_devices("GPU")) if jit_compile is None else bool(jit_compile)
    return dataclasses.replace(extractor, jit_compile=jit)


def describe_weights(weights: str | Path, seed: int) -> str:
    return f"random (seed {seed})" if str(weights) == "random" else str(weights)


def load_vgg19(weights: str | Path, model_dir: str | Path, seed: int = 0) -> keras.Model:
    """The whole VGG19 without its classifier, with the requested weights."""
    vgg = _bare_vgg19()
    if str(weights) == "random":
        logger.warning(
            "VGG19 uses random weights (seed %d): the output shows the optimisation working but is not "
            "art; set ATELIER_WEIGHTS=imagenet for real style transfer",
            seed,
        )
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


def cut_vgg19(
    vgg: keras.Model, layers: Sequence[str], weights_label: str = "", precision: str = "float32"
) -> FeatureExtractor:
    """A model with ``vgg``'s layers up to the deepest of ``layers``, returning their outputs by name.

    float32 shares ``vgg``'s layers; a mixed precision copies them (same float32 weights) under that
    dtype policy and casts the outputs back to float32, so losses never see half-precision values.
    """
    available = [layer.name for layer in vgg.layers[1:]]
    unknown = [name for name in layers if name not in available]
    if unknown:
        raise OptionsError(
            f"unknown VGG19 layer(s) {', '.join(unknown)}; valid names: {', '.join(available)}"
        )
    if not layers:
        raise OptionsError("at least one VGG19 layer is needed")
    inputs = keras.Input(shape=(None, None, 3), name="image")
    # Preprocessing stays float32: bfloat16 would round the 0..255 pixel values to whole grey levels.
    features = VGGPreprocess(name="vgg19_preprocess")(inputs)
    outputs: dict[str, keras.KerasTensor] = {}
    for layer in vgg.layers[1:]:
        features = (layer if precision == "float32" else _copy_with_policy(layer, precision))(features)
        if layer.name in layers:
            outputs[layer.name] = features if precision == "float32" else keras.ops.cast(features, "float32")
        if len(outputs) == len(set(layers)):
            break  # deeper layers are never evaluated
    model = keras.Model(inputs, outputs, name="vgg19_features")
    return FeatureExtractor(model=model, layers=tuple(layers), weights=weights_label, precision=precision)


def _copy_with_policy(layer: keras.layers.Layer, policy: str) -> keras.layers.Layer:
    """A new layer like ``layer`` (same config and weights) computing under the dtype ``policy``."""
    copy = layer.__class__.from_config({**layer.get_config(), "dtype": policy})
    if layer.weights:
        copy.build(layer.input.shape)
        copy.set_weights(layer.get_weights())
    return copy


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
