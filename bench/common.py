"""Shared helpers for bench/quality.py and bench/speed.py: paths, model folders, peers, devices."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = REPO_ROOT / ".." / "shared" / "data"
RESULTS_DIR = REPO_ROOT / "bench" / "results"
# Where to get them: a second environment, since the contrib wheel replaces the main one's OpenCV.
PEERS_REQUIREMENTS = "they need opencv-contrib-python-headless in a separate environment: see bench/README.md, Peers"
DEFAULT_MODELS = (
    ("tutorial-autoencoder", REPO_ROOT / "srmodel" / "bundled" / "tutorial-autoencoder"),
    ("default", REPO_ROOT / "srmodel" / "bundled" / "default"),
)
# Name -> (dnn_superres algorithm, weights file under peers/opencv_dnn_superres, scale).
PEERS = {
    "fsrcnn-x3": ("fsrcnn", "FSRCNN_x3.pb", 3),
    "espcn-x3": ("espcn", "ESPCN_x3.pb", 3),
}

Runner = Callable[[np.ndarray], np.ndarray]
# srmodel.precision.PRECISIONS, spelled out: bench parents and the bicubic/peer children of speed.py
# never import srmodel (its package import loads TensorFlow). tests/test_bench.py keeps the two equal.
PRECISION_CHOICES = ("auto", "float32", "bfloat16")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Keep TensorFlow's start-up chatter out of the output.
if str(REPO_ROOT) not in sys.path:  # `python bench/x.py` puts bench/ first, not the repo root.
    sys.path.insert(0, str(REPO_ROOT))


def add_data_root_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-root",
        type=Path,
        default=DEFAULT_DATA_ROOT,
        help="folder holding benchmarks/, faces/ and peers/ (default: ../shared/data next to the repo)",
    )


def check_data_root(data_root: Path) -> Path:
    """Returns the resolved data root, or exits with a clear message when it is missing."""
    root = data_root.resolve()
    if not root.is_dir():
        sys.exit(
            f"error: data root not found: {root}\n"
            "Pass --data-root PATH pointing at the shared data folder (benchmarks/, faces/, peers/)."
        )
    return root


def check_json_path(parser: argparse.ArgumentParser, path: Path | None) -> None:
    """Refuses a --json path that cannot be written, before the run rather than after it (its table is minutes away)."""
    if path is None:
        return
    folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), Path("."))
    problem = None
    if path.is_dir():
        problem = "it is a folder"
    elif not folder.is_dir():
        problem = f"{folder} is a file, not a folder"
    elif not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        problem = "permission denied"
    if problem:
        parser.error(f"--json {path}: cannot be written ({problem})")


def checked_percents(parser: argparse.ArgumentParser, percents: list[float]) -> list[float]:
    """--percents, each in (0, 100] and each once: a repeated percent would count its images twice."""
    if any(not 0 < p <= 100 for p in percents):
        parser.error(f"--percents must be in (0, 100]. Received: {' '.join(f'{p:g}' for p in percents)}")
    return list(dict.fromkeys(percents))


def run_main(main: Callable[[], int | None]) -> int | None:
    """Runs a script's main: srmodel's own errors (a folder that is not a model, say) as one line, not a traceback."""
    from srmodel.errors import SRModelError

    try:
        return main()
    except SRModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def parse_model_specs(specs: list[str] | None) -> list[tuple[str, Path]]:
    """Parses repeated `--model NAME=FOLDER` options; the bundled models when none is given."""
    if not specs:
        return [(name, path) for name, path in DEFAULT_MODELS]
    models = []
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            sys.exit(f"error: --model expects NAME=FOLDER. Received: {spec!r}")
        if not (Path(folder) / "model.keras").is_file():  # A typo must not cost a run, or its results file.
            sys.exit(f"error: --model {name}: no model.keras in {folder}")
        models.append((name, Path(folder)))
    return models


def available_models(models: list[tuple[str, Path]], notes: list[str]) -> list[tuple[str, Path]]:
    """Keeps the model folders that exist; adds a note for each missing one."""
    kept = []
    for name, folder in models:
        if (folder / "model.keras").is_file():
            kept.append((name, folder))
        else:
            notes.append(f"model '{name}' skipped: no model.keras in {folder}")
    return kept


def load_model_runner(folder: Path, mode: str = "enhancer", precision: str | None = None) -> Runner:
    """float32 H×W×3 in [0, 1] -> restored image, through the Enhancer (tiled) or one whole pass.

    `precision` as in `srmodel.inference.Enhancer`: auto, float32 or bfloat16 (None: $SRMODEL_PRECISION).
    """
    from srmodel.folder import load_model_folder
    from srmodel.precision import compute_model

    model, config, metrics = load_model_folder(folder)
    if mode == "enhancer":
        from srmodel.inference import Enhancer

        enhancer = Enhancer(model, config=config, metrics=metrics, info={"source": str(folder)}, precision=precision)
        return enhancer.enhance
    if mode != "whole":
        raise ValueError(f"Unknown mode. Expected 'enhancer' or 'whole'. Received: mode={mode!r}")
    return whole_image_runner(compute_model(model, precision)[1])


def resolved_precision(precision: str | None) -> str:
    """What `precision` means on this machine (loads TensorFlow to look for a GPU)."""
    from srmodel.precision import resolve_precision

    return resolve_precision(precision)


def whole_image_runner(model) -> Runner:
    """Runs the Keras model on the whole image in one traced call (no tiling)."""
    import tensorflow as tf

    run = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)],
    )

    def runner(image: np.ndarray) -> np.ndarray:
        return np.asarray(run(np.asarray(image, np.float32)[None])[0], dtype=np.float32)

    return runner


def peers_available() -> bool:
    return hasattr(cv2, "dnn_superres")


def load_peer(name: str, data_root: Path) -> Callable[[np.ndarray, tuple[int, int]], np.ndarray]:
    """Returns f(small float32 RGB, (height, width)) -> float32 RGB of that size, via dnn_superres.

    The peer upscales the small image by its factor (×3), then INTER_AREA resizes to the target.
    """
    algorithm, filename, scale = PEERS[name]
    weights = data_root / "peers" / "opencv_dnn_superres" / filename
    if not weights.is_file():
        raise FileNotFoundError(f"peer weights not found: {weights}")
    sr = cv2.dnn_superres.DnnSuperResImpl_create()
    sr.readModel(str(weights))
    sr.setModel(algorithm, scale)

    def upscale(small: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        bgr = np.rint(np.clip(small, 0.0, 1.0)[..., ::-1] * 255.0).astype(np.uint8)
        big = sr.upsample(np.ascontiguousarray(bgr))
        out = cv2.resize(big, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        return out[..., ::-1].astype(np.float32) / 255.0

    return upscale


def cpu_description() -> str:
    """CPU model name and the number of cores this process may use."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name}, {cores} cores"


def gpu_names() -> list[str]:
    """Names of the GPUs TensorFlow sees (imports TensorFlow)."""
    import tensorflow as tf

    names = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        names.append(details.get("device_name", device.name))
    return names
