"""The model folder: what training writes, what the Hub stores and what `load_enhancer` reads.

    model.keras   the Keras model (loads with safe_mode=True)
    config.json   architecture and its arguments, pixelation, training settings, versions
    metrics.json  validation PSNR/SSIM of the model, the pixelated input and bicubic upscaling
    README.md     the model card (Hub metadata + usage)
    samples.png   pixelated | model | original for a few validation images
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from srmodel.errors import ModelLoadError

FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
CARD_FILE = "README.md"
SAMPLES_FILE = "samples.png"
FOLDER_FILES = (MODEL_FILE, CONFIG_FILE, METRICS_FILE, CARD_FILE, SAMPLES_FILE)
BUNDLED_MODEL_DIR = Path(__file__).resolve().parent / "bundled" / "default"


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes to a temporary file beside `path`, then renames: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, payload: Any) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def atomic_save_model(model, path: str | os.PathLike) -> None:
    """Saves a Keras model so that a killed process leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".keras")
    os.close(fd)
    try:
        model.save(tmp)
        with open(tmp, "rb") as handle:  # On disk before the rename, or a lost machine could leave an empty file.
            os.fsync(handle.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Deletes what killed atomic saves of the files `names` left in `folder`; returns what it deleted.

    Only the temporary names those saves make are touched (`atomic_save_model`: ".last.XXXXXXXX.keras" for
    last.keras; `atomic_write_bytes`: ".state.json.XXXXXXXX.tmp"), so other hidden files stay. Only for a
    folder no other process is writing to (a locked run folder).
    """
    folder = Path(folder)
    patterns = []
    for name in names:
        if name.endswith(".keras"):
            patterns.append(re.compile(rf"\.{re.escape(Path(name).stem)}\.[a-z0-9_]{{8}}\.keras"))
        patterns.append(re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp"))
    stale = [p for p in folder.glob(".*") if p.is_file() and any(pattern.fullmatch(p.name) for pattern in patterns)]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def validate_config(config: Any, where: str = "config.json") -> dict:
    """Checks that a config names a known architecture and a format version we can read."""
    from srmodel.architectures import ARCHITECTURES

    if not isinstance(config, dict):
        raise ModelLoadError(f"{where} must hold a JSON object. Received: {type(config).__name__}")
    version = config.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelLoadError(f"{where} has no valid 'format_version'. Received: {version!r}")
    if version > FORMAT_VERSION:
        raise ModelLoadError(
            f"{where} uses format version {version}, but this srmodel reads up to {FORMAT_VERSION}. "
            "Upgrade srmodel (pip install -U ...) to load this model."
        )
    arch = config.get("architecture")
    name = arch.get("name") if isinstance(arch, dict) else None
    if name not in ARCHITECTURES:
        raise ModelLoadError(
            f"{where} names an unknown architecture. Expected one of {sorted(ARCHITECTURES)}. Received: {name!r}"
        )
    return config


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"Missing {path.name} in model folder {path.parent}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON ({exc}); the file may be corrupt.") from None


def load_model_folder(folder: str | os.PathLike):
    """Loads (model, config, metrics) from a model folder, raising `ModelLoadError` on any problem."""
    import keras

    import srmodel.layers  # noqa: F401  (registers the custom layers before loading)

    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"Model folder not found: {folder}")
    config = validate_config(read_json(folder / CONFIG_FILE), where=str(folder / CONFIG_FILE))
    metrics_path = folder / METRICS_FILE
    metrics = read_json(metrics_path) if metrics_path.exists() else {}
    model_path = folder / MODEL_FILE
    if not model_path.is_file():
        raise ModelLoadError(f"Missing {MODEL_FILE} in model folder {folder}")
    try:
        model = keras.saving.load_model(model_path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many types for corrupt or incompatible files.
        raise ModelLoadError(
            f"Could not load {model_path}: the file is corrupt or was saved by an incompatible version "
            f"({type(exc).__name__}: {str(exc)[:300]})"
        ) from exc
    check_restoration_model(model, where=str(model_path))
    return model, config, metrics


PROBE_SIDE = 24  # a multiple of every grid our architectures pad to (2, 3, 4, 8)


def check_restoration_model(model, where: str) -> None:
    """Refuses a loadable model that cannot restore images, so that callers fall back or stop with a reason
    instead of failing on every image (or, worse, returning gray or black ones).

    It must take and give H×W×3 images of any size, the same size out as in, with finite values.
    """
    import numpy as np

    def fail(reason: str) -> None:
        raise ModelLoadError(f"{where} is not an image restoration model srmodel can run: {reason}")

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        fail(f"expected one input and one output. Received: {len(model.inputs)} inputs, {len(model.outputs)} outputs")
    in_shape, out_shape = tuple(model.inputs[0].shape), tuple(model.outputs[0].shape)
    if len(in_shape) != 4 or in_shape[1:] != (None, None, 3):
        fail(f"expected an input of shape (batch, any height, any width, 3). Received: {in_shape}")
    if len(out_shape) != 4 or out_shape[-1] != 3:
        fail(f"expected an RGB output of shape (batch, height, width, 3). Received: {out_shape}")
    probe = np.random.default_rng(0).random((1, PROBE_SIDE, PROBE_SIDE, 3), dtype=np.float32)
    try:
        output = np.asarray(model(probe, training=False))
    except Exception as exc:  # noqa: BLE001  (whatever the model raises, the reason is the same)
        fail(f"it failed on a {PROBE_SIDE}×{PROBE_SIDE} test image ({type(exc).__name__}: {str(exc)[:200]})")
    if output.shape != probe.shape:
        fail(f"a {PROBE_SIDE}×{PROBE_SIDE} test image came back as shape {output.shape}")
    if not np.isfinite(output).all():
        fail("its output holds NaN or infinite values (broken weights)")
