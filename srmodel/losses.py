"""Training losses, registered so a compiled checkpoint reloads with safe_mode=True on resume."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="srmodel")
def charbonnier(y_true, y_pred, epsilon: float = 1e-3):
    """A smooth L1 (sqrt(d² + ε²)): robust to outliers like L1, differentiable at zero like L2."""
    diff = ops.cast(y_true, "float32") - ops.cast(y_pred, "float32")
    return ops.mean(ops.sqrt(ops.square(diff) + epsilon**2), axis=[1, 2, 3])


LOSSES = {"mse": "mean_squared_error", "l1": "mean_absolute_error", "charbonnier": charbonnier}


def get_loss(name: str):
    if name not in LOSSES:
        raise ValueError(f"Unknown loss. Expected one of {sorted(LOSSES)}. Received: {name!r}")
    return LOSSES[name]
