"""A naive style-transfer step, written plainly from the method's description.

This is the baseline the engine is measured against: eager mode (no tf.function), the full
VGG19 (all 22 layers, to block5_pool), preprocessing outside the model, and the style targets
recomputed from the style image on every step. The objective is the engine's (same layers,
same normalisation of the Gram matrices, same weights), so only the speed differs.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

CONTENT_LAYERS = ("block5_conv2",)
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")


def build_full_vgg(seed: int = 0) -> keras.Model:
    """The whole VGG19 without its classifier, returning every layer we read (randomly initialised)."""
    keras.utils.set_random_seed(seed)
    vgg = keras.applications.VGG19(include_top=False, weights=None)
    vgg.trainable = False
    outputs = {name: vgg.get_layer(name).output for name in CONTENT_LAYERS + STYLE_LAYERS}
    # Keep block5_pool as an output too, so the full network really runs every time.
    outputs["block5_pool"] = vgg.get_layer("block5_pool").output
    return keras.Model(vgg.input, outputs)


def gram(features: tf.Tensor) -> tf.Tensor:
    positions = tf.cast(tf.shape(features)[1] * tf.shape(features)[2], tf.float32)
    return tf.einsum("bijc,bijd->bcd", features, features) / positions


class NaiveStylizer:
    """Adam over the image pixels, everything recomputed eagerly on every step."""

    def __init__(
        self,
        model: keras.Model,
        content: np.ndarray,
        style: np.ndarray,
        content_weight: float = 1e4,
        style_weight: float = 1e-2,
        tv_weight: float = 30.0,
    ) -> None:
        self.model = model
        self.content = tf.constant(content[None], tf.float32)
        self.style = tf.constant(style[None], tf.float32)
        self.weights = (content_weight, style_weight, tv_weight)
        self.image = tf.Variable(self.content)
        self.optimizer = keras.optimizers.Adam(learning_rate=0.02, beta_1=0.99, epsilon=1e-1)

    def features(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.model(keras.applications.vgg19.preprocess_input(image * 255.0))

    def loss(self) -> tf.Tensor:
        content_weight, style_weight, tv_weight = self.weights
        out = self.features(self.image)
        content_target = self.features(self.content)
        style_target = self.features(self.style)  # recomputed every step: the naive part
        content = tf.add_n([tf.reduce_mean((out[n] - content_target[n]) ** 2) for n in CONTENT_LAYERS]) / len(
            CONTENT_LAYERS
        )
        style = tf.add_n(
            [tf.reduce_mean((gram(out[n]) - gram(style_target[n])) ** 2) for n in STYLE_LAYERS]
        ) / len(STYLE_LAYERS)
        tv = tf.reduce_sum(tf.image.total_variation(self.image))
        return content_weight * content + style_weight * style + tv_weight * tv

    def step(self) -> float:
        with tf.GradientTape() as tape:
            loss = self.loss()
        grad = tape.gradient(loss, self.image)
        self.optimizer.apply_gradients([(grad, self.image)])
        self.image.assign(tf.clip_by_value(self.image, 0.0, 1.0))
        return float(loss)
