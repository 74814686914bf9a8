"""Training losses, registered so a compiled checkpoint reloads with safe_mode=True on resume."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="srmodel")
def charbonnier(y_true, y_pred, epsilon: float = 1e-3):
    """A smooth L1 (sqrt(d² + ε²)): robust to outliers like L1, differentiable at zero like L2."""
    diff = tf.cast(y_true, tf.float32) - tf.cast(y_pred, tf.float32)
    return tf.reduce_mean(tf.sqrt(tf.square(diff) + epsilon**2), axis=[1, 2, 3])


LOSSES = {"mse": "mean_squared_error", "l1": "mean_absolute_error", "charbonnier": charbonnier}


def get_loss(name: str):
    if name not in LOSSES:
        raise ValueError(f"Unknown loss. Expected one of {sorted(LOSSES)}. Received: {name!r}")
    return LOSSES[name]
