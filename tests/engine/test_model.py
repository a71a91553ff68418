"""The VGG19 extractor: same objective as the plain network, weights handling, layer names."""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.legacy.saving import legacy_h5_format

from spec.errors import OptionsError, WeightsError
from spec.options import StyleOptions
from tests.engine.conftest import WEIGHTS_SEED, gradient, noise, stripes
from worker.engine import model as model_module
from worker.engine.images import to_float
from worker.engine.model import FeatureExtractor, load_extractor, load_vgg19
from worker.engine.objective import loss_parts
from worker.engine.optimize import compute_targets, loss_weights


def _numpy_gram(features: np.ndarray) -> np.ndarray:
    flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
    return flat.T @ flat / flat.shape[0]


def test_cut_extractor_gives_the_losses_of_the_full_vgg19(extractor: FeatureExtractor) -> None:
    full = load_vgg19("random", model_dir=Path("unused"), seed=WEIGHTS_SEED)

    def plain_features(image: np.ndarray) -> dict[str, np.ndarray]:
        """Every layer of the whole network, with Keras's own preprocessing outside the model."""
        x = keras.applications.vgg19.preprocess_input(image[None] * 255.0)
        outputs = {}
        for layer in full.layers[1:]:
            x = layer(x)
            outputs[layer.name] = np.asarray(x)[0]
        return outputs

    options = StyleOptions()
    content, style, image = to_float(gradient()), to_float(stripes()), to_float(noise())
    content_ref, style_ref, image_ref = plain_features(content), plain_features(style), plain_features(image)
    expected_content = np.mean((image_ref["block5_conv2"] - content_ref["block5_conv2"]) ** 2)
    expected_style = np.mean(
        [np.mean((_numpy_gram(image_ref[n]) - _numpy_gram(style_ref[n])) ** 2) for n in options.style_layers]
    )
    expected_tv = np.abs(np.diff(image, axis=0)).sum() + np.abs(np.diff(image, axis=1)).sum()

    targets = compute_targets(extractor, content, [style], options)
    parts = loss_parts(extractor, loss_weights(options), tf.constant(image[None]), targets)
    assert float(parts["content"]) == pytest.approx(options.content_weight * expected_content, rel=1e-5)
    assert float(parts["style"]) == pytest.approx(options.style_weight * expected_style, rel=1e-5)
    assert float(parts["tv"]) == pytest.approx(options.tv_weight * expected_tv, rel=1e-5)
    assert expected_content > 0 and expected_style > 0


def test_extractor_is_cut_after_the_deepest_requested_layer() -> None:
    shallow = load_extractor("random", content_layers=("block2_conv1",), style_layers=("block1_conv1",))
    layer_names = {layer.name for layer in shallow.model.layers}
    assert "block2_conv1" in layer_names
    assert "block2_conv2" not in layer_names
    assert set(shallow(tf.zeros((1, 16, 16, 3)))) == {"block1_conv1", "block2_conv1"}


def test_random_weights_are_seeded_and_announced(caplog: pytest.LogCaptureFixture) -> None:
    image = tf.constant(to_float(noise(32, 32))[None])
    with caplog.at_level(logging.WARNING, logger="worker.engine.model"):
        first = load_extractor("random", seed=3, style_layers=("block1_conv1",))
    same = load_extractor("random", seed=3, style_layers=("block1_conv1",))
    other = load_extractor("random", seed=4, style_layers=("block1_conv1",))
    assert "random weights" in caplog.text and "not art" in caplog.text
    np.testing.assert_array_equal(first(image)["block5_conv2"], same(image)["block5_conv2"])
    assert not np.array_equal(first(image)["block1_conv1"], other(image)["block1_conv1"])


def test_unknown_layer_name_lists_the_valid_ones() -> None:
    with pytest.raises(OptionsError, match=r"unknown VGG19 layer\(s\) block9_conv1.*block5_conv2"):
        load_extractor("random", style_layers=("block1_conv1", "block9_conv1"))


def test_missing_weights_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "vgg19.h5"
    with pytest.raises(WeightsError, match=f"{missing}.*does not exist"):
        load_extractor(missing)


def test_corrupt_weights_file_is_refused(tmp_path: Path) -> None:
    corrupt = tmp_path / "vgg19.h5"
    corrupt.write_bytes(b"not hdf5 at all")
    with pytest.raises(WeightsError, match="not a usable VGG19 weights file"):
        load_extractor(corrupt)


def test_imagenet_without_the_file_or_a_network_says_where_to_put_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_module, "WEIGHTS_URL", (tmp_path / "no-such-download.h5").as_uri())
    model_dir = tmp_path / "models"
    with pytest.raises(WeightsError) as raised:
        load_extractor("imagenet", model_dir=model_dir)
    message = str(raised.value)
    for expected in (model_module.WEIGHTS_FILE, str(model_dir), "ATELIER_MODEL_DIR", "ATELIER_WEIGHTS"):
        assert expected in message


def test_imagenet_file_in_the_model_dir_is_used_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extractor: FeatureExtractor
) -> None:
    """A file in Keras's own (legacy HDF5) format, put in model_dir by hand, is loaded without a download."""
    monkeypatch.setattr(model_module, "WEIGHTS_URL", (tmp_path / "no-such-download.h5").as_uri())
    with h5py.File(tmp_path / model_module.WEIGHTS_FILE, "w") as weights_file:
        legacy_h5_format.save_weights_to_hdf5_group(
            weights_file, load_vgg19("random", tmp_path, WEIGHTS_SEED)
        )
    offline = load_extractor("imagenet", model_dir=tmp_path)
    image = tf.constant(to_float(noise(32, 32))[None])
    np.testing.assert_array_equal(offline(image)["block4_conv1"], extractor(image)["block4_conv1"])


def test_local_weights_file_is_loaded(tmp_path: Path, extractor: FeatureExtractor) -> None:
    path = tmp_path / "vgg19.weights.h5"
    load_vgg19("random", tmp_path, WEIGHTS_SEED).save_weights(path)
    local = load_extractor(path)
    image = tf.constant(to_float(noise(32, 32))[None])
    np.testing.assert_array_equal(local(image)["block3_conv1"], extractor(image)["block3_conv1"])
