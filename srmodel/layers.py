"""Custom Keras layers, registered so models load with `safe_mode=True` (no Lambda layers).

On TensorFlow they call TensorFlow's own ops (fast, and what the TFLite converter knows); on the other
Keras backends (JAX, PyTorch) they fall back to `keras.ops`, so a saved model runs wherever Keras 3 does.
"""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "srmodel"


def _on_tensorflow() -> bool:
    return keras.backend.backend() == "tensorflow"


def _pad_edge(x, multiple: int):
    """Repeats the last row and column until both sides are multiples of `multiple`."""
    height, width = ops.shape(x)[1], ops.shape(x)[2]
    x = ops.concatenate([x, ops.repeat(x[:, -1:], (-height) % multiple, axis=1)], axis=1)
    return ops.concatenate([x, ops.repeat(x[:, :, -1:], (-width) % multiple, axis=2)], axis=2)


def _fold(x, block: int):
    """Space-to-depth with TensorFlow's channel order: (row offset, column offset, channel)."""
    _, height, width, channels = ops.shape(x)
    x = ops.reshape(x, (-1, height // block, block, width // block, block, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, height // block, width // block, block * block * channels))


def _unfold(x, block: int):
    """Depth-to-space, the exact inverse of `_fold`."""
    _, height, width, channels = ops.shape(x)
    out_channels = channels // (block * block)
    x = ops.reshape(x, (-1, height, width, block, block, out_channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, height * block, width * block, out_channels))


@keras.saving.register_keras_serializable(package=PACKAGE)
class PadToMultiple(keras.layers.Layer):
    """Pads the bottom and right edges (by repeating the edge pixels) to a multiple of `multiple`.

    Edge repetition works for any size down to 1×1, where reflection padding would fail.
    """

    def __init__(self, multiple: int, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, inputs):
        if not _on_tensorflow():
            return _pad_edge(inputs, self.multiple)
        import tensorflow as tf

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
        shape = ops.shape(reference)
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
        if not _on_tensorflow():
            return _fold(inputs, self.block)
        import tensorflow as tf

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
        if not _on_tensorflow():
            return _unfold(inputs, self.block)
        import tensorflow as tf

        return tf.nn.depth_to_space(inputs, self.block)

    def compute_output_shape(self, input_shape):
        b = self.block
        h, w = input_shape[1], input_shape[2]
        return (input_shape[0], None if h is None else h * b, None if w is None else w * b, input_shape[3] // (b * b))

    def get_config(self):
        return {**super().get_config(), "block": self.block}
