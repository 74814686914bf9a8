"""Training patches in NumPy and OpenCV: the tf.data recipe of `srmodel.data`, for any Keras backend.

`make_train_dataset` needs TensorFlow. A machine that has Keras 3 with JAX or PyTorch but no TensorFlow
(a lent GPU, say) draws its patches here instead, with the same recipe: each source folder equally
often, a random rescale (area, bilinear or bicubic, antialiased) to between `min_scale` and full size,
an 80×80 crop, a flip and a quarter turn, then `srmodel.degrade.pixelate` at a random percent.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from srmodel.data import RESCALE_METHODS, read_rgb
from srmodel.degrade import pixelate
from srmodel.errors import DataError

# Pillow's filters for srmodel.data's RESCALE_METHODS ("area" goes through OpenCV).
PILLOW_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def load_images(paths: list[Path], workers: int | None = None) -> list[np.ndarray]:
    """Decodes every file once (uint8 RGB), in parallel: patches are then cut from memory."""
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        return list(pool.map(read_rgb, paths))


def _resize_float(region: np.ndarray, size: int, method: str) -> np.ndarray:
    """Antialiased resize of a float32 H×W×3 region to size×size (Pillow's filters widen when shrinking)."""
    if method == "area":
        return cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA)
    resample = PILLOW_FILTERS[method]
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(region[..., c])).resize((size, size), resample))
        for c in range(region.shape[2])
    ]
    return np.stack(channels, axis=-1)


class PatchSampler:
    """Endless (pixelated, original) float32 patch batches drawn from groups of decoded images."""

    def __init__(
        self,
        groups: list[list[np.ndarray]],
        *,
        patch_size: int = 80,
        percent_range: tuple[float, float] = (20.0, 60.0),
        min_scale: float = 1.0,
    ):
        self.groups = [g for g in groups if g]
        if not self.groups:
            raise DataError("No training images to draw patches from.")
        low, high = percent_range
        if not 0.0 < low <= high <= 100.0:
            raise ValueError(f"percent_range must satisfy 0 < low <= high <= 100. Received: {percent_range}")
        self.patch_size = int(patch_size)
        self.percent_range = (float(low), float(high))
        self.min_scale = float(min_scale)

    def _original_patch(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        size = self.patch_size
        height, width = image.shape[:2]
        short = min(height, width)
        lowest = min(1.0, max(self.min_scale, size / short)) if self.min_scale < 1.0 else 1.0
        scale = rng.uniform(lowest, 1.0)
        # Cutting the region that becomes the patch, then resizing it, is the same draw as resizing the
        # whole image and cropping, at a fraction of the cost.
        side = min(short, max(size, int(round(size / scale))))
        top = rng.integers(0, height - side + 1)
        left = rng.integers(0, width - side + 1)
        region = image[top : top + side, left : left + side].astype(np.float32) / 255.0
        method = RESCALE_METHODS[rng.integers(len(RESCALE_METHODS))]
        patch = region if side == size else np.clip(_resize_float(region, size, method), 0.0, 1.0)
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        return np.ascontiguousarray(np.rot90(patch, rng.integers(4)))

    def _upsized(self, image: np.ndarray) -> np.ndarray:
        """Images shorter than a patch are enlarged (bicubic), as `srmodel.data` does."""
        short = min(image.shape[:2])
        if short >= self.patch_size:
            return image
        scale = self.patch_size / short
        height, width = (int(np.ceil(side * scale)) for side in image.shape[:2])
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        group = self.groups[rng.integers(len(self.groups))]
        image = self._upsized(group[rng.integers(len(group))])
        original = self._original_patch(image, rng)
        return pixelate(original, rng.uniform(*self.percent_range)), original

    def batch(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self.sample(rng) for _ in range(batch_size)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
