"""Training losses, registered so a compiled checkpoint reloads with safe_mode=True on resume."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="srmodel")
def charbonnier(y_true, y_pred, epsilon: float = 1e-3):
    """A smooth L1 (sqrt(d² + ε²)): robust to outliers like L1, differentiable at zero like L2."""
    diff = ops.cast(y_true, "float32") - ops.cast(y_pred, "float32")
    return ops.mean(ops.sqrt(ops.square(diff) + epsilon**2), axis=[1, 2, 3])


@keras.saving.register_keras_serializable(package="srmodel")
def psnr_loss(y_true, y_pred, floor: float = 1e-5):
    """Minus each patch's PSNR (10·log10 of its MSE, floored at 50 dB), the quantity benchmarks average.

    Unlike MSE or Charbonnier over a batch, which let the patches with the largest errors dominate, every
    patch's gain counts in decibels, as every image's does in a mean of per-image PSNR. The floor keeps
    near-flat patches, whose error is mostly 8-bit rounding, from taking over.
    """
    diff = ops.cast(y_true, "float32") - ops.cast(y_pred, "float32")
    mse = ops.mean(ops.square(diff), axis=[1, 2, 3])
    return 10.0 * ops.log(mse + floor) / ops.log(10.0)


LOSSES = {
    "mse": "mean_squared_error",
    "l1": "mean_absolute_error",
    "charbonnier": charbonnier,
    "psnr": psnr_loss,
}


def get_loss(name: str):
    if name not in LOSSES:
        raise ValueError(f"Unknown loss. Expected one of {sorted(LOSSES)}. Received: {name!r}")
    return LOSSES[name]
