"""Pixelation and downscaling: the degradations the models learn to undo.

`pixelate` is the tutorial's operation (area-downscale, then area-upscale back), made exact about
the output shape. Training uses the same function through `tf.numpy_function`, so what the model
sees during training is bit-for-bit what a user's `pixelate` call produces.
"""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_PERCENT = 40.0
DEFAULT_PERCENT_RANGE = (20.0, 60.0)

_CV2_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)


def _check_percent(percent: float) -> float:
    try:
        value = float(percent)
    except (TypeError, ValueError):
        raise ValueError(f"`percent` must be a number in (0, 100]. Received: percent={percent!r}") from None
    if not (0.0 < value <= 100.0) or not np.isfinite(value):
        raise ValueError(f"`percent` must be in (0, 100]. Received: percent={percent!r}")
    return value


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"Expected a NumPy array. Received: type={type(image).__name__}")
    if image.ndim not in (2, 3):
        raise ValueError(f"Expected an H×W or H×W×C image. Received: shape={image.shape}")
    if image.size == 0:
        raise ValueError(f"Expected a non-empty image. Received: shape={image.shape}")
    return image


def small_size(height: int, width: int, percent: float) -> tuple[int, int]:
    """(height, width) of the intermediate image: the tutorial's `int(side * percent / 100)`, at least 1."""
    percent = _check_percent(percent)
    return max(1, int(height * percent / 100)), max(1, int(width * percent / 100))


def _resize(image: np.ndarray, height: int, width: int, interpolation: int) -> np.ndarray:
    """cv2.resize that keeps a trailing channel axis of size 1 and accepts any numeric dtype."""
    source = image
    if image.dtype.type not in _CV2_DTYPES:
        source = image.astype(np.float32)
    out = cv2.resize(source, (width, height), interpolation=interpolation)
    if image.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    if out.dtype != image.dtype:
        if np.issubdtype(image.dtype, np.integer):
            info = np.iinfo(image.dtype)
            out = np.clip(np.rint(out), info.min, info.max)
        out = out.astype(image.dtype)
    return out


def downscale(image: np.ndarray, percent: float = DEFAULT_PERCENT) -> np.ndarray:
    """Area-downscale to `percent` of each side (the low-resolution image a camera would have)."""
    image = _check_image(image)
    height, width = small_size(image.shape[0], image.shape[1], percent)
    return _resize(image, height, width, cv2.INTER_AREA)


def pixelate(image: np.ndarray, percent: float = DEFAULT_PERCENT) -> np.ndarray:
    """Pixelate `image` like the tutorial: INTER_AREA down to `percent` %, INTER_AREA back up.

    Returns an array of the input's shape and dtype, for gray, RGB, RGBA and any size from 1×1.
    """
    image = _check_image(image)
    small = downscale(image, percent)
    return _resize(small, image.shape[0], image.shape[1], cv2.INTER_AREA)


def bicubic_from_small(image: np.ndarray, percent: float = DEFAULT_PERCENT) -> np.ndarray:
    """The classic baseline: area-downscale, then bicubic upscaling back to the input's size."""
    image = _check_image(image)
    small = downscale(image, percent)
    out = _resize(small.astype(np.float32), image.shape[0], image.shape[1], cv2.INTER_CUBIC)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(image.dtype)
    return np.clip(out, 0.0, 1.0).astype(image.dtype)


def pixelate_tf(image, percent):
    """`pixelate` inside a tf.data pipeline (float32 H×W×C in [0, 1], scalar percent)."""
    import tensorflow as tf

    def _numpy_pixelate(array: np.ndarray, pct: np.ndarray) -> np.ndarray:
        return pixelate(np.asarray(array, dtype=np.float32), float(pct))

    out = tf.numpy_function(_numpy_pixelate, [image, percent], tf.float32, stateful=False)
    out.set_shape(image.shape)
    return out
