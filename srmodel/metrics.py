"""PSNR and SSIM for images in [0, 1]: Keras metrics for training, NumPy helpers for evaluation.

Both wrap `tf.image.psnr` / `tf.image.ssim` (Gaussian window 11, sigma 1.5, K1=0.01, K2=0.03), which
agree with scikit-image's `peak_signal_noise_ratio` and `structural_similarity(...,
gaussian_weights=True, use_sample_covariance=False, data_range=1)`; tests/test_metrics.py checks it.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

MAX_PSNR = 100.0  # dB, for identical images: an infinite score would make every mean infinite


@keras.saving.register_keras_serializable(package="srmodel")
def psnr(y_true, y_pred):
    """Per-image PSNR in dB of float images in [0, 1] (Keras metric: averaged over the batch).

    Capped at `MAX_PSNR`, so one exactly restored image cannot turn a batch's (or an epoch's) mean into
    infinity; NaN, from a diverged model, stays NaN.
    """
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.clip_by_value(tf.cast(y_pred, tf.float32), 0.0, 1.0)
    value = tf.image.psnr(y_true, y_pred, max_val=1.0)
    return tf.where(value > MAX_PSNR, tf.constant(MAX_PSNR, value.dtype), value)


@keras.saving.register_keras_serializable(package="srmodel")
def ssim(y_true, y_pred):
    """Per-image SSIM of float images in [0, 1] (Keras metric: averaged over the batch)."""
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.clip_by_value(tf.cast(y_pred, tf.float32), 0.0, 1.0)
    return tf.image.ssim(y_true, y_pred, max_val=1.0)


def _as_batch(image: np.ndarray) -> tf.Tensor:
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        array = array[..., None]
    return tf.constant(array[None])


def image_psnr(reference: np.ndarray, image: np.ndarray) -> float:
    """PSNR of one float image in [0, 1] against its reference (`MAX_PSNR` for identical ones, NaN if it holds NaN)."""
    return float(psnr(_as_batch(reference), _as_batch(image))[0].numpy())


def image_ssim(reference: np.ndarray, image: np.ndarray) -> float:
    """SSIM of one float image in [0, 1]; images smaller than the 11×11 window are compared as-is."""
    reference = np.asarray(reference, dtype=np.float32)
    image = np.asarray(image, dtype=np.float32)
    if min(reference.shape[:2]) < 11:
        # tf.image.ssim needs at least an 11×11 image; fall back to the global SSIM formula.
        c1, c2 = 0.01**2, 0.03**2
        mx, my = reference.mean(), image.mean()
        vx, vy = reference.var(), image.var()
        cov = ((reference - mx) * (image - my)).mean()
        return float(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(ssim(_as_batch(reference), _as_batch(image))[0].numpy())
