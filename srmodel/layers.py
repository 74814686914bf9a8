"""Custom Keras layers, registered so models load with `safe_mode=True` (no Lambda layers)."""

from __future__ import annotations

import keras
import tensorflow as tf

PACKAGE = "srmodel"


@keras.saving.register_keras_serializable(package=PACKAGE)
class PadToMultiple(keras.layers.Layer):
    """Pads the bottom and right edges (by repeating the edge pixels) to a multiple of `multiple`.

    Edge repetition works for any size down to 1×1, where reflection padding would fail.
    """

    def __init__(self, multiple: int, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, inputs):
        shape = tf.shape(inputs)
        pad_h = (-shape[1]) % self.multiple
        pad_w = (-shape[2]) % self.multiple
        x = tf.concat([inputs, tf.repeat(inputs[:, -1:, :, :], pad_h, axis=1)], axis=1)
        x = tf.concat([x, tf.repeat(x[:, :, -1:, :], pad_w, axis=2)], axis=2)
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, None, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CropToMatch(keras.layers.Layer):
    """Crops the first input to the height and width of the second (undoes `PadToMultiple`)."""

    def call(self, inputs):
        x, reference = inputs
        shape = tf.shape(reference)
        return x[:, : shape[1], : shape[2], :]

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpaceToDepth(keras.layers.Layer):
    """Folds `block`×`block` pixel squares into channels: convolutions then run on 1/block² positions."""

    def __init__(self, block: int, **kwargs):
        super().__init__(**kwargs)
        self.block = int(block)

    def call(self, inputs):
        return tf.nn.space_to_depth(inputs, self.block)

    def compute_output_shape(self, input_shape):
        b = self.block
        h, w = input_shape[1], input_shape[2]
        return (input_shape[0], None if h is None else h // b, None if w is None else w // b, input_shape[3] * b * b)

    def get_config(self):
        return {**super().get_config(), "block": self.block}


@keras.saving.register_keras_serializable(package=PACKAGE)
class DepthToSpace(keras.layers.Layer):
    """Inverse of `SpaceToDepth` (pixel shuffle)."""

    def __init__(self, block: int, **kwargs):
        super().__init__(**kwargs)
        self.block = int(block)

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.block)

    def compute_output_shape(self, input_shape):
        b = self.block
        h, w = input_shape[1], input_shape[2]
        return (input_shape[0], None if h is None else h * b, None if w is None else w * b, input_shape[3] // (b * b))

    def get_config(self):
        return {**super().get_config(), "block": self.block}
