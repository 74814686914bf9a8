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
    if not image.dtype.isnative:  # OpenCV reads raw memory: a big-endian '>u2' would be garbled.
        image = image.astype(image.dtype.newbyteorder("="))
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
    With alpha (H×W×2 or H×W×4), colour is averaged by coverage (see `_pixelate_with_alpha`).
    """
    image = _check_image(image)
    if image.ndim == 3 and image.shape[2] in (2, 4):
        return _pixelate_with_alpha(image, percent)
    small = downscale(image, percent)
    return _resize(small, image.shape[0], image.shape[1], cv2.INTER_AREA)


def _pixelate_with_alpha(image: np.ndarray, percent: float) -> np.ndarray:
    """Averages premultiplied colour, so the hidden colour of transparent pixels (often black) cannot seep
    into the visible ones as a dark fringe; alpha itself is pixelated as any other channel."""
    if small_size(image.shape[0], image.shape[1], percent) == image.shape[:2]:
        return image.copy()  # 100 % (or a size that cannot shrink): nothing to average.
    integer = np.issubdtype(image.dtype, np.integer)
    scale = float(np.iinfo(image.dtype).max) if integer else 1.0
    work = np.float64 if image.dtype == np.float64 else np.float32
    x = image.astype(work) / work(scale)
    alpha = x[..., -1:]
    premultiplied = np.concatenate([x[..., :-1] * alpha, alpha], axis=2)
    blocks = _resize(downscale(premultiplied, percent), image.shape[0], image.shape[1], cv2.INTER_AREA)
    coverage = blocks[..., -1:]
    plain = _resize(downscale(x, percent), image.shape[0], image.shape[1], cv2.INTER_AREA)
    # Where nothing is visible the colour is undefined; the plain average keeps it close to the input's.
    color = np.where(coverage > 1e-6, blocks[..., :-1] / np.maximum(coverage, 1e-6), plain[..., :-1])
    out = np.concatenate([np.clip(color, 0.0, 1.0), coverage], axis=2) * work(scale)
    if integer:
        return np.clip(np.rint(out), 0, scale).astype(image.dtype)
    return out.astype(image.dtype)


def bicubic_from_small(image: np.ndarray, percent: float = DEFAULT_PERCENT) -> np.ndarray:
    """The classic baseline: area-downscale, then bicubic upscaling back to the input's size."""
    image = _check_image(image)
    small = downscale(image, percent)
    out = _resize(small.astype(np.float32), image.shape[0], image.shape[1], cv2.INTER_CUBIC)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(image.dtype)
    return np.clip(out, 0.0, 1.0).astype(image.dtype)


def percent_settings(config: dict | None) -> tuple[float, float, float]:
    """(minimum, maximum, default) pixelation percent a model trained on, from its config, with safe fallbacks."""
    pixelation = (config or {}).get("pixelation") or {}
    low, high = DEFAULT_PERCENT_RANGE
    try:
        lo, hi = (float(v) for v in pixelation.get("percent_range", (low, high)))
        if 0 < lo <= hi <= 100:
            low, high = lo, hi
    except (TypeError, ValueError):
        pass
    default = pixelation.get("validation_percent", DEFAULT_PERCENT)
    try:
        default = float(default)
    except (TypeError, ValueError):
        default = DEFAULT_PERCENT
    return low, high, min(max(default, low), high)


def pixelate_tf(image, percent):
    """`pixelate` inside a tf.data pipeline (float32 H×W×C in [0, 1], scalar percent)."""
    import tensorflow as tf

    def _numpy_pixelate(array: np.ndarray, pct: np.ndarray) -> np.ndarray:
        return pixelate(np.asarray(array, dtype=np.float32), float(pct))

    out = tf.numpy_function(_numpy_pixelate, [image, percent], tf.float32, stateful=False)
    out.set_shape(image.shape)
    return out
