"""Training data: finding images, the LFW download, the split, and the tf.data pipelines.

Decoding goes through Pillow (any mode, 16-bit, WebP), is checked once up front so a bad file is
skipped and reported instead of killing an epoch, and is cached in memory after the first pass (as
8-bit pixels: a 12-megapixel photo takes 36 MB there, not the 144 MB of float32).
Training pairs are (pixelated patch, original patch); validation pairs use a fixed pixelation on
deterministic centre crops so every run is scored on the same pixels.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from srmodel.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
TRAIN_MAX_PIXELS = 89_478_485  # Pillow's own default limit, as before: 270 MB decoded, several at once on a pool

# LFW as distributed by its authors (lfw.tgz, 13,233 photos of 250×250), mirrored on figshare by
# scikit-learn because the UMass site is often down. Overridable for mirrors and tests.
LFW_URL = os.environ.get("SRMODEL_LFW_URL", "https://ndownloader.figshare.com/files/5976018")
LFW_SHA256 = os.environ.get(
    "SRMODEL_LFW_SHA256", "055f7d9c632d7370e6fb4afc7468d40f970c34a80d4c6f50ffec63f5a8d536c0"
)


@dataclass
class ImageScan:
    """The usable images under some roots, and what was skipped and why."""

    paths: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    excluded: int = 0  # files left out by --exclude
    unmatched: list[str] = field(default_factory=list)  # --exclude entries that named no file
    duplicates: int = 0  # files found under more than one root (nested or repeated --data): used once
    source: dict[Path, int] = field(default_factory=dict)  # each usable file's root (the first it was found in)


def download_lfw(cache_dir: str | None = None, origin: str | None = None, file_hash: str | None = None) -> Path:
    """Downloads and extracts LFW with `keras.utils.get_file` (checksum-verified, cached, progress bar)."""
    import keras

    origin = origin or os.environ.get("SRMODEL_LFW_URL", LFW_URL)
    file_hash = file_hash or os.environ.get("SRMODEL_LFW_SHA256", LFW_SHA256)
    try:
        extracted = keras.utils.get_file(
            fname="lfw.tgz", origin=origin, file_hash=file_hash, extract=True, cache_dir=cache_dir,
            cache_subdir="datasets",
        )
    except Exception as exc:
        raise DataError(
            f"Could not download LFW from {origin}: {exc}. Check your connection, or download lfw.tgz "
            "yourself, extract it and pass the folder: --data path/to/lfw"
        ) from exc
    return Path(extracted)


def find_image_files(root: str | os.PathLike) -> list[Path]:
    """Every file under `root` (recursively) with an image extension, in a stable order."""
    root = Path(root)
    if root.is_file():
        return [root] if root.suffix.lower() in IMAGE_EXTENSIONS else []
    if not root.is_dir():
        raise DataError(f"--data: folder not found. Received: {str(root)!r}")
    found = []
    visited: set[str] = set()  # real folders: a link back up the tree (a loop) is walked once, not forever
    for dirpath, dirnames, names in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:
            dirnames[:] = []
            continue
        visited.add(real)
        found += [Path(dirpath) / n for n in names if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith(".")]
    return sorted(found)


def load_exclusions(list_file: str | os.PathLike | None) -> list[str]:
    """Paths to leave out, one per line, e.g. a benchmark holdout: relative to a --data folder (any tail of a
    file's path matches, so `Name/Name_0001.jpg` or `Name_0001.jpg`) or absolute. A line starting with `#` and
    a `  # note` after an entry are comments (`Photo #1.png` is a name); a leading `./`, Windows backslashes and
    a byte-order mark are all understood."""
    if not list_file:
        return []
    try:
        lines = Path(list_file).read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise DataError(f"--exclude: cannot read {list_file}: {exc}") from None
    entries = []
    for line in lines:
        if line.strip().startswith("#"):
            continue
        entry = re.sub(r"\s+#(\s.*)?$", "", line).strip().replace("\\", "/")  # "x.png  # note", not "Photo #1.png"
        while entry.startswith("./"):
            entry = entry[2:]
        entry = entry.rstrip("/")
        if entry:
            entries.append(entry)
    return entries


def _exclusion_of(path: Path, resolved: Path, exclusions: set[str]) -> str | None:
    """The entry of `exclusions` that names `path` (a tail of its parts, or its absolute path), if any.

    `resolved` is `path.resolve()`, which the scan needs anyway (one resolve per file, not two)."""
    parts = path.as_posix().split("/")
    for n in range(1, len(parts) + 1):
        tail = "/".join(parts[-n:])
        if tail in exclusions:
            return tail
    # Absolute entries may name the file through the links in its --data path, or the folders they point to.
    for absolute in {Path(os.path.abspath(path)).as_posix(), resolved.as_posix()}:
        if absolute in exclusions:
            return absolute
    return None


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decodes an image file as the CLI and the demo read it (`read_image`: upright by EXIF, 16 bits kept),
    as uint8 RGB H×W×3 (`to_rgb8`: transparent pixels composited onto white), so a model trains on what it
    will be shown."""
    from srmodel.images import read_image, to_rgb8

    return to_rgb8(read_image(path, max_pixels=TRAIN_MAX_PIXELS))


def _probe(path: Path) -> str | None:
    """None when the file decodes to a non-empty image, else the reason it cannot be used."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8, which the training pipeline cannot open; rename the file"
    try:
        array = read_rgb(path)
    except Exception as exc:  # Pillow raises many types for bad files.
        return f"{type(exc).__name__}: {exc}"
    if array.size == 0:
        return "empty image"
    return None


def scan_images(roots: list[str | os.PathLike], exclusions: list[str] | None = None) -> ImageScan:
    """Finds and test-decodes every image under `roots`; raises DataError when none is usable."""
    excluded = set(exclusions or [])
    matched: set[str] = set()
    left_out = 0
    candidates: list[Path] = []
    source: dict[Path, int] = {}
    seen: set[Path] = set()
    duplicates = 0
    for index, root in enumerate(roots):
        for path in find_image_files(root):
            key = path.resolve()
            entry = _exclusion_of(path, key, excluded) if excluded else None
            if entry is not None:
                matched.add(entry)
                left_out += 1
                continue
            if key in seen:  # A file in two sources would be in both the split's halves.
                duplicates += 1
                continue
            seen.add(key)
            candidates.append(path)
            source[path] = index
    if not candidates and matched:
        raise DataError(f"--data: every image found in {', '.join(str(r) for r in roots)} is left out by --exclude")
    if not candidates:
        raise DataError(
            f"--data: no images found (looked for {', '.join(IMAGE_EXTENSIONS)}) in: "
            + ", ".join(str(r) for r in roots)
        )
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        reasons = list(pool.map(_probe, candidates))
    scan = ImageScan(duplicates=duplicates, excluded=left_out, unmatched=sorted(excluded - matched))
    for path, reason in zip(candidates, reasons, strict=True):
        if reason is None:
            scan.paths.append(path)
            scan.source[path] = source[path]
        else:
            scan.skipped.append((path, reason))
    if not scan.paths:
        raise DataError(
            f"--data: none of the {len(candidates)} image files could be read "
            f"(first problem: {scan.skipped[0][0]}: {scan.skipped[0][1]})"
        )
    return scan


def split_paths(paths: list[Path], val_fraction: float = 0.2, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """Deterministic split by file: the same files and seed always give the same split."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1). Received: {val_fraction}")
    ordered = sorted(paths)
    if len(ordered) == 1:
        return ordered, ordered
    order = np.random.default_rng(seed).permutation(len(ordered))
    n_val = min(len(ordered) - 1, max(1, round(len(ordered) * val_fraction)))
    val = sorted(ordered[i] for i in order[:n_val])
    train = sorted(ordered[i] for i in order[n_val:])
    return train, val


def _decode_uint8_tf(path):
    """tf.data op: decode with Pillow to 8-bit RGB (what the cache holds)."""
    import tensorflow as tf

    image = tf.numpy_function(lambda p: read_rgb(p.decode("utf-8")), [path], tf.uint8, stateful=False)
    image.set_shape([None, None, 3])
    return image


def _decode_tf(path, patch_size: int):
    """tf.data op: decode with Pillow, then make sure both sides are at least `patch_size`."""
    return _to_float_patchable(_decode_uint8_tf(path), patch_size)


def _to_float_patchable(image, patch_size: int):
    """8-bit RGB -> float32 in [0, 1], upscaled (bicubic) where a side is shorter than `patch_size`."""
    import tensorflow as tf

    image = tf.image.convert_image_dtype(image, tf.float32)
    shape = tf.shape(image)
    short = tf.minimum(shape[0], shape[1])
    scale = tf.maximum(1.0, tf.cast(patch_size, tf.float32) / tf.cast(short, tf.float32))
    new_size = tf.cast(tf.math.ceil(tf.cast(shape[:2], tf.float32) * scale), tf.int32)
    image = tf.cond(
        scale > 1.0,
        lambda: tf.clip_by_value(tf.image.resize(image, new_size, method="bicubic"), 0.0, 1.0),
        lambda: image,
    )
    return image


RESCALE_METHODS = ("area", "bilinear", "bicubic")


def _random_rescale(image, min_scale: float, patch_size: int):
    """Scale augmentation: shows the model the same content at several sizes (faces at 80 px too)."""
    import tensorflow as tf

    if min_scale >= 1.0:
        return image
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    lowest = tf.maximum(min_scale, patch_size / tf.reduce_min(shape))
    scale = tf.random.uniform([], tf.minimum(lowest, 1.0), 1.0)
    new_size = tf.cast(tf.round(shape * scale), tf.int32)
    # Photos reach users shrunk by all sorts of software: mix the common antialiased filters.
    branches = [
        lambda method=method: tf.clip_by_value(tf.image.resize(image, new_size, method=method, antialias=True), 0.0, 1.0)
        for method in RESCALE_METHODS
    ]
    return tf.switch_case(tf.random.uniform([], 0, len(branches), dtype=tf.int32), branches)


def _augment(image, patch_size: int):
    import tensorflow as tf

    patch = tf.image.random_crop(image, [patch_size, patch_size, 3])
    patch = tf.image.random_flip_left_right(patch)
    return tf.image.rot90(patch, tf.random.uniform([], 0, 4, dtype=tf.int32))


def make_train_dataset(
    groups: list[list[Path]],
    *,
    weights: list[float] | None = None,
    patch_size: int,
    batch_size: int,
    percent_range: tuple[float, float],
    min_scale: float = 1.0,
    seed: int = 0,
):
    """Endless shuffled batches of (pixelated, original) random patches.

    `groups` are lists of image paths drawn from with probabilities proportional to `weights` (default:
    equal; one group: plain shuffling), so a few hundred general photos are not drowned by thousands of
    faces when balancing is asked for.
    """
    import tensorflow as tf

    from srmodel.degrade import pixelate_tf

    autotune = tf.data.AUTOTUNE
    low, high = percent_range

    def to_pair(patch):
        percent = tf.random.uniform([], low, high)
        return pixelate_tf(patch, percent), patch

    def images(paths: list[Path]):
        ds = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
        # The cache and the shuffle buffer hold 8-bit pixels; float32 only from here on, one image at a time.
        ds = ds.map(_decode_uint8_tf, num_parallel_calls=autotune).cache()
        ds = ds.shuffle(min(len(paths), 4096), seed=seed, reshuffle_each_iteration=True).repeat()
        return ds.map(lambda im: _to_float_patchable(im, patch_size), num_parallel_calls=autotune)

    weights = [1.0] * len(groups) if weights is None else [float(w) for w in weights]
    if len(weights) != len(groups):
        raise ValueError(f"one weight per group ({len(groups)}). Received: {weights}")
    kept = [(g, w) for g, w in zip(groups, weights, strict=True) if g and w > 0]
    if not kept:
        raise DataError("No training images left after the split.")
    if len(kept) == 1:
        ds = images(kept[0][0])
    else:
        ds = tf.data.Dataset.sample_from_datasets([images(g) for g, _ in kept], weights=[w for _, w in kept], seed=seed)
    ds = ds.map(lambda im: _random_rescale(im, min_scale, patch_size), num_parallel_calls=autotune)
    ds = ds.map(lambda im: _augment(im, patch_size), num_parallel_calls=autotune)
    ds = ds.map(to_pair, num_parallel_calls=autotune)
    return ds.batch(batch_size, drop_remainder=True).prefetch(autotune)


def make_val_dataset(paths: list[Path], *, patch_size: int, batch_size: int, percent: float):
    """(pixelated, original) centre crops with a fixed pixelation percent: comparable across runs."""
    import tensorflow as tf

    from srmodel.degrade import pixelate_tf

    def centre(image):
        return tf.image.resize_with_crop_or_pad(image, patch_size, patch_size)

    ds = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
    ds = ds.map(lambda p: centre(_decode_tf(p, patch_size)), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda im: (pixelate_tf(im, tf.constant(percent, tf.float32)), im), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).cache().prefetch(tf.data.AUTOTUNE)
