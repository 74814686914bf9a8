"""`Enhancer`: runs a restoration model on images of any size, shape and dtype.

Large images are processed tile by tile. Each tile is fed to the network with a context margin of
at least the receptive field and only its centre is kept, so the result matches a single whole-image
pass (no seams) while memory stays bounded by the tile size rather than by the image size.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

# Tile origins are multiples of this, and of the model's grid where that does not divide it (a
# `default` with block_size 3): a tile then sees the same pooling/space-to-depth grid as the whole
# image and its centre is computed exactly as in an untiled pass. 8 covers the bundled models
# (grid 2 for "default", 4 for "tutorial-autoencoder").
ALIGN = 8

# Bounds of the automatic tile side (kept centre, pixels) and the float32 bytes a tile's widest feature map may take.
TILE_SIZE_RANGE = (512, 1024)
TILE_BUDGET_BYTES = 48 * 2**20

_FLOAT_DTYPES = (np.float16, np.float32, np.float64)
_INT_DTYPES = (np.uint8, np.uint16)

ProgressFn = Callable[[int, int], None]


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _check_image(image: Any) -> np.ndarray:
    """Validates an input image; returns it as a NumPy array (a copy only to fix a big-endian byte order)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"Expected a NumPy array. Received: type={type(image).__name__}")
    dtype_ok = image.dtype.type in _INT_DTYPES or image.dtype.type in _FLOAT_DTYPES
    shape_ok = image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 2, 3, 4))
    if not (dtype_ok and shape_ok) or image.size == 0:
        raise ValueError(
            "Expected a non-empty H×W, H×W×1, H×W×2 (gray, alpha), H×W×3 or H×W×4 image of dtype uint8, uint16 "
            f"or float (values in [0, 1]). Received: shape={image.shape}, dtype={image.dtype}"
        )
    if image.dtype.type in _FLOAT_DTYPES and not np.isfinite(image).all():
        raise ValueError(
            f"Expected finite values, but the image contains NaN or infinity. "
            f"Received: shape={image.shape}, dtype={image.dtype}"
        )
    if not image.dtype.isnative:  # e.g. '>u2' from a big-endian TIFF: the dtype checks below compare native types.
        image = image.astype(image.dtype.newbyteorder("="))
    return image


def _to_network(patch: np.ndarray) -> np.ndarray:
    """uint8/uint16/float patch (H×W, H×W×C) -> float32 H×W×3 in [0, 1]; alpha is left out."""
    if patch.dtype == np.uint8:
        x = patch.astype(np.float32) * np.float32(1 / 255)
    elif patch.dtype == np.uint16:
        x = patch.astype(np.float32) * np.float32(1 / 65535)
    else:
        x = np.clip(patch.astype(np.float32), 0.0, 1.0)
    if x.ndim == 2:
        x = x[..., None]
    if x.shape[2] <= 2:  # Gray, with or without alpha.
        return np.repeat(x[..., :1], 3, axis=2)
    return x[..., :3]


def _from_network(rgb: np.ndarray, like: np.ndarray) -> np.ndarray:
    """float32 H×W×3 network output -> the channel layout and dtype of `like` (alpha copied)."""
    if like.ndim == 2 or like.shape[2] <= 2:
        out = rgb.mean(axis=2, keepdims=like.ndim == 3)  # The network may tint gray a little.
    else:
        out = rgb
    if like.dtype == np.uint8:
        out = np.rint(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif like.dtype == np.uint16:
        out = np.rint(np.clip(out, 0.0, 1.0) * 65535.0).astype(np.uint16)
    else:
        out = out.astype(like.dtype)
    if like.ndim == 3 and like.shape[2] in (2, 4):
        out = np.concatenate([out, like[..., -1:]], axis=2)
    return out


def _kept_neutral(out: np.ndarray, image: np.ndarray) -> np.ndarray:
    """A gray picture stored as RGB comes back gray: the network tints neutral pixels a little (a few levels).

    Averaging the channels projects each pixel onto the gray axis, where the truth of such a picture lies, so
    it moves the result closer to it (up to the rounding to whole levels). Colour images (any channel differing
    anywhere) are left as they are.
    """
    if image.ndim != 3 or image.shape[2] < 3:
        return out
    if not (np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])):
        return out
    gray = out[..., :3].astype(np.float32).mean(axis=2, keepdims=True)
    if np.issubdtype(out.dtype, np.integer):
        gray = np.rint(gray)
    out[..., :3] = gray.astype(out.dtype)
    return out


# The self-ensemble's views: 0-3 quarter turns, each with and without a left-right mirror (the eight
# symmetries of a square). The models trained on patches flipped and turned every way, so each view is
# restored about equally well, but with different errors, which their mean partly cancels.
DIHEDRAL_VIEWS = tuple((turns, mirror) for turns in range(4) for mirror in (False, True))


def _dihedral(image: np.ndarray, turns: int, mirror: bool) -> np.ndarray:
    """`image` turned `turns` quarter turns counter-clockwise, then mirrored left-right (a view, no copy)."""
    view = np.rot90(image, turns)
    return view[:, ::-1] if mirror else view


def _dihedral_inverse(image: np.ndarray, turns: int, mirror: bool) -> np.ndarray:
    """Undoes `_dihedral(·, turns, mirror)`."""
    return np.rot90(image[:, ::-1] if mirror else image, -turns)


def _spans(length: int, tile: int, margin: int) -> list[tuple[int, int, int, int]]:
    """(input_start, input_stop, keep_start, keep_stop) per tile along one axis.

    Kept cores are [i*tile, (i+1)*tile); the input adds `margin` on both sides, clamped to the image.
    """
    if length <= tile:
        return [(0, length, 0, length)]
    spans = []
    for start in range(0, length, tile):
        stop = min(start + tile, length)
        spans.append((max(0, start - margin), min(length, stop + margin), start, stop))
    return spans


def grid_multiple(model) -> int:
    """The multiple the model pads its input to (its `PadToMultiple` layers; 1 when it has none).

    The self-ensemble pads each tile to this before turning it, so that every view meets the model's
    grid where a plain pass would, with no more edge padding than a plain pass adds: the models never
    saw padding in training, and each padded row costs accuracy near the border.
    """
    from srmodel.layers import PadToMultiple

    return math.lcm(1, *(layer.multiple for layer in model.layers if isinstance(layer, PadToMultiple)))


def _layers_at_scale(model) -> Iterator[tuple[Any, float]]:
    """(layer, scale) for every layer, `scale` being how many input pixels one step of the layer's input spans:
    space-to-depth and pooling enlarge it, depth-to-space and upsampling shrink it back."""
    import keras

    from srmodel.layers import DepthToSpace, SpaceToDepth

    scale = 1.0
    for layer in model.layers:
        yield layer, scale
        if isinstance(layer, SpaceToDepth):
            scale *= layer.block
        elif isinstance(layer, keras.layers.MaxPooling2D):
            scale *= layer.strides[0]
        elif isinstance(layer, DepthToSpace):
            scale /= layer.block
        elif isinstance(layer, keras.layers.UpSampling2D):
            scale /= layer.size[0]


def context_margin(model, minimum: int = 48) -> int:
    """Pixels of context a tile needs on each side so its kept centre equals a whole-image pass.

    The sum, in input pixels, of every convolution's reach along the model's layers (scaled by the
    resolution it runs at) plus one grid cell per downsampling, which bounds the longest path through
    residual and U-Net skips alike. Deeper models get wider margins; never below `minimum`.
    """
    import keras

    from srmodel.layers import SpaceToDepth

    reach = 0.0
    for layer, scale in _layers_at_scale(model):
        if isinstance(layer, keras.layers.Conv2D):
            reach += scale * layer.dilation_rate[0] * (layer.kernel_size[0] - 1) / 2
        elif isinstance(layer, SpaceToDepth):
            reach += scale * (layer.block - 1)
        elif isinstance(layer, keras.layers.MaxPooling2D):
            reach += scale * (layer.pool_size[0] - 1)
    return _round_up(max(minimum, int(np.ceil(reach))), ALIGN)


def widest_feature_map(model) -> float:
    """Numbers per input pixel in the model's widest convolution output (filters / scale²): what a tile's
    memory grows with (64 for the tutorial's autoencoder, 8 for the bundled `default`)."""
    import keras

    return max(
        (layer.filters / scale**2 for layer, scale in _layers_at_scale(model) if isinstance(layer, keras.layers.Conv2D)),
        default=3.0,
    )


def automatic_tile_size(model, margin: int, align: int = ALIGN) -> int:
    """The largest tile side within TILE_SIZE_RANGE whose widest float32 feature map, margins included,
    fits TILE_BUDGET_BYTES (the smallest when none does).

    Every tile recomputes its margins, so small tiles waste time: with the 20-block model of stage 26
    (88-pixel margins) 1024-pixel tiles ran a 12-megapixel photo 1.3 to 1.45 times as fast as 512-pixel ones
    for 0.1 to 0.2 GB more peak memory. Wide full-resolution models (the tutorial's) keep 512.
    """
    widest = widest_feature_map(model)
    smallest, largest = TILE_SIZE_RANGE
    for side in range(_round_up(largest, align), smallest, -align):
        if (side + 2 * margin) ** 2 * widest * 4 <= TILE_BUDGET_BYTES:
            return side
    return _round_up(smallest, align)


class Enhancer:
    """Restores images with a Keras model: any size (tiled), gray/gray+alpha/RGB/RGBA, uint8/uint16/float.

    `precision` is "auto" (bfloat16 on CPUs that compute it natively, else float32), "float32" or
    "bfloat16"; None reads $SRMODEL_PRECISION (see `srmodel.precision`). `tile_size` None picks one from
    the model (`automatic_tile_size`); `tile_margin` None covers its receptive field (`context_margin`).

    Thread-safe, so a web demo may call it from several threads at once: `enhance` keeps no state on
    the object, and simultaneous calls run separate traced copies of the model (see `_pass`).
    """

    def __init__(
        self,
        model,
        *,
        config: dict | None = None,
        metrics: dict | None = None,
        info: dict | None = None,
        tile_size: int | None = None,
        tile_margin: int | None = None,
        precision: str | None = None,
    ):
        from srmodel.precision import compute_model

        self.model = model
        # The stored model stays float32; a bfloat16 twin computes where the CPU makes that faster.
        self.precision, network = compute_model(model, precision)
        self.config = dict(config or {})
        self.metrics = dict(metrics or {})
        self._grid = grid_multiple(model)
        self._align = math.lcm(ALIGN, self._grid)
        self.tile_margin = context_margin(model) if tile_margin is None else tile_margin
        self.tile_size = automatic_tile_size(model, self.tile_margin, self._align) if tile_size is None else tile_size
        arch = self.config.get("architecture")
        arch_name = arch.get("name") if isinstance(arch, dict) else arch
        self._info: dict[str, Any] = {"source": None, "revision": None, **(info or {})}
        self._info["architecture"] = arch_name if arch_name is not None else self._info.get("architecture")
        self._info["metrics"] = self.metrics
        self._info["precision"] = self.precision
        self._network = network
        self._pool_lock = threading.Lock()
        self._idle_runs = [self._trace()]  # Traced at load, rather than in the first request.

    @property
    def info(self) -> dict[str, Any]:
        """Where the model came from: source, revision, architecture name, metrics, precision (a copy)."""
        return copy.deepcopy(self._info)

    @property
    def tile_size(self) -> int:
        """Side of the kept centre of each tile, in pixels (rounded up to a multiple of 8 and of the
        model's grid)."""
        return self._tile_size

    @tile_size.setter
    def tile_size(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < ALIGN:
            raise ValueError(f"`tile_size` must be an integer >= {ALIGN}. Received: tile_size={value!r}")
        self._tile_size = _round_up(int(value), self._align)

    @property
    def tile_margin(self) -> int:
        """Context added around each tile; must cover the receptive field (rounded like `tile_size`)."""
        return self._tile_margin

    @tile_margin.setter
    def tile_margin(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"`tile_margin` must be an integer >= 0. Received: tile_margin={value!r}")
        self._tile_margin = _round_up(int(value), self._align)

    def _trace(self):
        """The model as a traced function of one signature with unknown sizes: every tile shape reuses
        the same graph (no retracing)."""
        import tensorflow as tf

        network = self._network
        return tf.function(
            lambda x: network(x, training=False),
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
        ).get_concrete_function()

    def _pass(self, rgb: np.ndarray) -> np.ndarray:
        """float32 H×W×3 -> float32 H×W×3: one run of the model, on a traced copy no other thread is using.

        With TensorFlow's oneDNN kernels (on by default on x86), two simultaneous runs of the *same*
        traced function share the kernels' cached state: with TensorFlow 2.21, about 1 call in 1,000
        returned a wrong image, and 8 threads on 16×16 images crashed the process. Separate traced
        copies never did (nor did `TF_ENABLE_ONEDNN_OPTS=0`), and unlike a lock they keep simultaneous
        calls running side by side. The pool grows to the peak number of simultaneous calls; each copy
        shares the model's weights.
        """
        # Tracing is rare (once per extra simultaneous caller); under the lock, two threads never trace at once.
        with self._pool_lock:
            run = self._idle_runs.pop() if self._idle_runs else self._trace()
        try:
            restored = run(rgb[None])
        finally:
            with self._pool_lock:
                self._idle_runs.append(run)
        return np.asarray(restored[0], dtype=np.float32)

    def _predict(self, rgb: np.ndarray, self_ensemble: bool = False) -> np.ndarray:
        """One pass through the model, or the self-ensemble's eight averaged."""
        if not self_ensemble:
            return self._pass(rgb)
        # Edge-pad to the model's grid first, as a plain pass would: then every rotated or mirrored view
        # meets the grid where the whole image's views do (tiles start on multiples of the grid), so
        # tiles stay seam-free.
        height, width = rgb.shape[:2]
        grid = self._grid
        pad = ((0, _round_up(height, grid) - height), (0, _round_up(width, grid) - width), (0, 0))
        padded = np.pad(rgb, pad, mode="edge")
        total = np.zeros(padded.shape, np.float32)
        for turns, mirror in DIHEDRAL_VIEWS:
            restored = self._pass(np.ascontiguousarray(_dihedral(padded, turns, mirror)))
            total += _dihedral_inverse(restored, turns, mirror)
        return total[:height, :width] / len(DIHEDRAL_VIEWS)

    def enhance(
        self, image: np.ndarray, progress: ProgressFn | None = None, *, self_ensemble: bool = False
    ) -> np.ndarray:
        """Returns the restored image, with the same shape and dtype as `image`.

        Accepts H×W gray, H×W×1, H×W×2 gray+alpha, H×W×3 RGB and H×W×4 RGBA as uint8, uint16 or float in [0, 1]
        (float values outside [0, 1] are clipped). Alpha is copied unchanged; gray is fed to the
        network as RGB and converted back by the channel mean. `progress(done, total)` is called
        after each tile.

        `self_ensemble=True` restores the eight rotations and mirror images of every tile and averages
        them back in place: about 8× the time for a somewhat better result (with the bundled model,
        +0.05 to +0.15 dB on B100 and +0.1 to +0.5 dB on faces; docs/design.md).
        """
        if not isinstance(self_ensemble, (bool, np.bool_)):
            raise TypeError(f"`self_ensemble` must be True or False. Received: self_ensemble={self_ensemble!r}")
        image = _check_image(image)
        tile, margin = self._tile_size, self._tile_margin
        height, width = image.shape[:2]
        rows, cols = _spans(height, tile, margin), _spans(width, tile, margin)
        total = len(rows) * len(cols)
        if total == 1:
            out = _from_network(self._predict(_to_network(image), self_ensemble), image)
            if progress is not None:
                progress(1, total)
            return _kept_neutral(out, image)
        out = np.empty_like(image)
        done = 0
        for y0, y1, ky0, ky1 in rows:
            for x0, x1, kx0, kx1 in cols:
                patch = image[y0:y1, x0:x1]
                restored = self._predict(_to_network(patch), self_ensemble)
                core = restored[ky0 - y0 : ky1 - y0, kx0 - x0 : kx1 - x0]
                out[ky0:ky1, kx0:kx1] = _from_network(core, patch[ky0 - y0 : ky1 - y0, kx0 - x0 : kx1 - x0])
                done += 1
                if progress is not None:
                    progress(done, total)
        return _kept_neutral(out, image)

    def __call__(
        self, image: np.ndarray, progress: ProgressFn | None = None, *, self_ensemble: bool = False
    ) -> np.ndarray:
        return self.enhance(image, progress, self_ensemble=self_ensemble)

    def __repr__(self) -> str:
        return (
            f"Enhancer(architecture={self._info.get('architecture')!r}, source={self._info.get('source')!r}, "
            f"precision={self.precision!r}, tile_size={self._tile_size}, tile_margin={self._tile_margin})"
        )

