"""Fitting a model: strategy and device set-up, callbacks, resumable checkpoints, final evaluation.

`train.py` parses the command line; everything it does lives here so it can be tested and reused.
A run folder holds the publishable model folder (see `srmodel.folder`) plus `checkpoints/` (the
resumable state: last model with optimizer, best model, run state) and `logs/` (TensorBoard, CSV).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from srmodel.errors import DataError, ModelLoadError, SRModelError

if TYPE_CHECKING:  # imported for real only once _configure_tensorflow has set threads and precision
    import keras
    import tensorflow as tf

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.keras"
BEST_CHECKPOINT = "best.keras"
STATE_FILE = "state.json"
LOCK_FILE = "run.lock"


@dataclass
class TrainSettings:
    """Everything that defines a run; saved in checkpoints/state.json so `--resume` repeats it."""

    data: list[str]
    out: str
    arch: str = "default"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 20
    steps_per_epoch: int = 200
    batch_size: int = 16
    patch_size: int = 80
    learning_rate: float = 1e-3
    loss: str = "mse"
    seed: int = 0  # picks the validation split (and, without sample_seed, the patches)
    sample_seed: int | None = None  # re-draws the patches of a continued run without moving its validation files
    val_split: float = 0.2
    val_percent: float = 40.0
    percent_range: tuple[float, float] = (20.0, 60.0)
    min_scale: float = 1.0
    max_val_images: int = 1000
    patience: int = 10
    keep: str = "best"  # the epoch exported: "best" validation PSNR or "last"
    max_minutes: float | None = None
    exclude: str | None = None
    init_from: str | None = None
    teacher: str | None = None  # distillation: a model folder, Hub repo id or "bundled" whose outputs are targets
    teacher_weight: float | None = None  # target = weight · teacher output + (1 − weight) · original (0.5 with a teacher)
    balance: bool | list[float] = False  # True: sources drawn equally; a list: one weight per --data source
    strategy: str = "default"
    mixed_precision: bool | str = False  # False, "float16" or "bfloat16" (True: float16, as older runs saved it)
    jit: bool = False
    threads: int | None = None
    logical_cpus: int = 0

    def __post_init__(self) -> None:
        self._check_numbers()
        if self.teacher is None:  # runs saved before this rule recorded a weight of 0.5 without a teacher
            self.teacher_weight = None
            return
        if self.teacher_weight is None:
            self.teacher_weight = 0.5
        if not 0 < self.teacher_weight <= 1:
            raise ValueError(f"Expected a teacher weight in (0, 1]. Received: teacher_weight={self.teacher_weight:g}")

    def _check_numbers(self) -> None:
        """Bad numbers fail here, before any data is read, not as a TensorFlow error in the first epoch (or a hang)."""
        low, high = self.percent_range
        checks = [
            (self.epochs >= 1, "--epochs must be >= 1", self.epochs),
            (self.steps_per_epoch >= 1, "--steps-per-epoch must be >= 1", self.steps_per_epoch),
            (self.batch_size >= 1, "--batch-size must be >= 1", self.batch_size),
            (self.patch_size >= 8, "--patch-size must be >= 8 pixels", self.patch_size),
            (0 < self.learning_rate < float("inf"), "--learning-rate must be a number > 0", f"{self.learning_rate:g}"),
            (0 <= self.seed < 2**32, "--seed must be in 0 .. 2**32 - 1", self.seed),
            (self.sample_seed is None or 0 <= self.sample_seed < 2**32, "--sample-seed must be in 0 .. 2**32 - 1",
             self.sample_seed),
            (0 < self.val_percent <= 100, "--val-percent must be in (0, 100]", f"{self.val_percent:g}"),
            (0 < low <= high <= 100, "--percent-range LOW HIGH needs 0 < LOW <= HIGH <= 100", f"{low:g} {high:g}"),
            (0 < self.min_scale <= 1, "--min-scale must be in (0, 1]", f"{self.min_scale:g}"),
            (0 < self.val_split < 1, "--val-split must be in (0, 1)", f"{self.val_split:g}"),
            (self.patience >= 0, "--patience must be >= 0", self.patience),
            (self.max_minutes is None or self.max_minutes > 0, "--max-minutes must be > 0", self.max_minutes),
            (self.threads is None or self.threads >= 1, "--threads must be >= 1", self.threads),
            (isinstance(self.arch_kwargs, dict), "--arch-kwargs must be a JSON object such as '{\"blocks\": 8}'",
             self.arch_kwargs),
        ]
        for ok, message, received in checks:
            if not ok:
                raise ValueError(f"{message}. Received: {received}")

    @property
    def patch_seed(self) -> int:
        return self.seed if self.sample_seed is None else self.sample_seed

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.out) / CHECKPOINT_DIR


def _configure_tensorflow(settings: TrainSettings):
    """Threads, logical CPUs, precision: must happen before TensorFlow creates its devices."""
    import tensorflow as tf

    if settings.threads:
        tf.config.threading.set_intra_op_parallelism_threads(settings.threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, settings.threads)))
    if settings.logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(settings.logical_cpus)]
        )
    import keras

    keras.mixed_precision.set_global_policy(precision_policy(settings.mixed_precision))
    keras.utils.set_random_seed(settings.patch_seed)


def precision_policy(mixed_precision: bool | str) -> str:
    """The Keras dtype policy for `--mixed-precision`: 16-bit compute, float32 weights.

    bfloat16 needs no loss scaling and halves step time on CPUs with AVX512-BF16 or AMX; float16
    is the GPU choice.
    """
    policies = {False: "float32", True: "mixed_float16", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
    if mixed_precision not in policies:
        raise ValueError(f"Expected mixed precision float16 or bfloat16. Received: {mixed_precision!r}")
    return policies[mixed_precision]


def _make_strategy(settings: TrainSettings):
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if settings.strategy == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if settings.strategy == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if settings.strategy != "default":
        raise ValueError(f"Unknown strategy. Expected default, mirrored or multiworker. Received: {settings.strategy!r}")
    return tf.distribute.get_strategy()


def describe_device() -> str:
    """A one-line description of where training runs, printed at the start of every run."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for gpu in gpus:
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name", gpu.name))
        return f"GPU: {', '.join(names)}"
    return f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _compile(model, settings: TrainSettings, steps_total: int):
    import keras

    from srmodel.losses import get_loss
    from srmodel.metrics import psnr, ssim

    schedule = keras.optimizers.schedules.CosineDecay(
        settings.learning_rate, decay_steps=max(1, steps_total), alpha=0.05
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=schedule),
        loss=get_loss(settings.loss),
        metrics=[psnr, ssim],
        jit_compile=settings.jit,
    )


def _make_checkpoint_callback(settings: TrainSettings, state: dict):
    """Saves last (with optimizer) and best models atomically at each epoch end, plus the run state."""
    import keras

    from srmodel.folder import atomic_save_model, atomic_write_json

    class ResumableCheckpoint(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            value = float(logs.get("val_psnr", float("nan")))
            directory = settings.checkpoint_dir
            if np.isfinite(value) and value > state.get("best_val_psnr", -np.inf):
                atomic_save_model(self.model, directory / BEST_CHECKPOINT)
                state["best_val_psnr"] = value
                state["best_epoch"] = epoch + 1
            atomic_save_model(self.model, directory / LAST_CHECKPOINT)
            state["epoch"] = epoch + 1
            state["train_seconds"] = state.get("train_seconds", 0.0) + (time.monotonic() - self.started)
            self.started = time.monotonic()
            atomic_write_json(directory / STATE_FILE, state)
            if settings.max_minutes and state["train_seconds"] >= settings.max_minutes * 60:
                print(f"\nTime budget of {settings.max_minutes} min reached; stopping.")
                self.model.stop_training = True

    return ResumableCheckpoint()


def _epochs_without_gain(state: dict) -> int:
    """Finished epochs since validation PSNR last improved (all of them while none has been finite)."""
    return state.get("epoch", 0) - state.get("best_epoch", 0)


def _stopped_early(state: dict, patience: int) -> bool:
    """Early stopping's rule, read from the run's state alone, so that a run resumed any number of times stops
    exactly where one uninterrupted run would: after an epoch without a gain once `patience` such epochs have
    passed, never after the first. As in Keras' EarlyStopping for finite scores; a NaN or infinite score never
    counts as a gain (Keras would take a first one as its best)."""
    waited = _epochs_without_gain(state)
    return state.get("epoch", 0) >= 2 and waited >= 1 and waited >= patience


def _make_early_stopping(settings: TrainSettings, state: dict):
    """Stops training by `_stopped_early`; runs after the checkpoint callback, which brings `state` up to date."""
    import keras

    class EarlyStoppingFromState(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if _stopped_early(state, settings.patience):
                print(f"\nEarly stopping: validation PSNR has not improved for {_epochs_without_gain(state)} epoch(s) "
                      f"(--patience {settings.patience}).")
                self.model.stop_training = True

    return EarlyStoppingFromState()


def _load_initial_weights(model, settings: TrainSettings, trained, config: dict) -> None:
    """Fine-tuning: start from a trained model's weights (same architecture, deeper or shallower)."""
    from srmodel.architectures import dropped_blocks, warm_start

    arch = config["architecture"]
    trained_kwargs = arch.get("kwargs") or {}
    if arch["name"] != settings.arch:
        raise SRModelError(
            f"--init-from {settings.init_from}: its architecture {arch['name']} {trained_kwargs} differs "
            f"from --arch {settings.arch} {settings.arch_kwargs}; pass the same --arch."
        )
    try:
        new_layers = warm_start(model, trained)
    except ValueError as exc:
        raise SRModelError(
            f"--init-from {settings.init_from}: its architecture {arch['name']} {trained_kwargs} differs "
            f"from --arch {settings.arch} {settings.arch_kwargs} ({exc}) Pass the same --arch-kwargs, "
            f"or only add or remove residual blocks."
        ) from None
    print(f"Starting from the weights of {settings.init_from}")
    if settings.learning_rate >= 1e-3:
        print(f"note: --learning-rate {settings.learning_rate:g} is a rate for training from scratch; its first steps "
              "undo part of what the model learned. Fine-tunes of the bundled model used 5e-5.", file=sys.stderr)
    dropped = dropped_blocks(model, trained)
    if dropped:
        print(f"Residual blocks left out (the new model is shallower): {', '.join(dropped)}")
    if new_layers:
        print(f"New layers (trained from scratch, added as identity): {', '.join(new_layers)}")


def load_teacher(settings: TrainSettings) -> keras.Model:
    """The teacher of a distillation run, computing in the run's precision (its bfloat16 twin for bfloat16 runs).

    Its weights are kept on the CPU: it runs inside the tf.data pipeline, which cannot reach a GPU's variables.
    """
    import tensorflow as tf

    from srmodel.hub import load_parts
    from srmodel.precision import compute_model

    with tf.device("/CPU:0"):
        teacher, config, _, _ = load_parts(settings.teacher)
        arch = config["architecture"]
        print(f"Distilling from {settings.teacher} ({arch['name']} {arch.get('kwargs') or {}}): targets are "
              f"{settings.teacher_weight:g} × its output + {1 - settings.teacher_weight:g} × the original")
        return compute_model(teacher, "bfloat16" if settings.mixed_precision == "bfloat16" else "float32")[1]


def with_teacher_targets(dataset: tf.data.Dataset, teacher: keras.Model, weight: float) -> tf.data.Dataset:
    """(pixelated, original) batches -> (pixelated, weight · teacher(pixelated) + (1 − weight) · original).

    Distillation: a smaller model can reach a larger one's outputs more easily than the originals, whose
    finest detail pixelation destroyed, so a blend of the two is a target it spends its capacity on better.
    Validation keeps the originals, so the numbers a run reports stay comparable with any other run.
    """
    import tensorflow as tf

    if not 0 < weight <= 1:
        raise ValueError(f"Expected a teacher weight in (0, 1]. Received: {weight}")

    def blend(pixelated, original):
        taught = tf.cast(teacher(pixelated, training=False), original.dtype)
        return pixelated, weight * taught + (1.0 - weight) * original

    return dataset.map(blend).prefetch(tf.data.AUTOTUNE)


def read_state(out: str | os.PathLike) -> dict | None:
    path = Path(os.path.realpath(out)) / CHECKPOINT_DIR / STATE_FILE  # "run/x/.." is "run" even without x
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


_STOP_REQUESTED = threading.Event()
_STOP_SIGNAL = [signal.SIGINT]  # the signal that stopped the run (Ctrl-C unless `kill` sent SIGTERM)


def _interrupt(signum: int = signal.SIGINT, _frame=None):
    """SIGINT and SIGTERM during fit: remember the request, then interrupt where the program is."""
    _STOP_SIGNAL[0] = signum
    _STOP_REQUESTED.set()
    raise KeyboardInterrupt


def interrupted_exit_status() -> int:
    """The shell's convention for a run stopped by a signal: 128 + its number (130 for Ctrl-C, 143 for kill)."""
    return 128 + int(_STOP_SIGNAL[0])


def _make_stop_callback():
    """Raises the interrupt again at the next batch if the first one was lost.

    Python drops an exception raised inside a `__del__` or a weakref callback ("Exception ignored in ..."),
    and TensorFlow's objects run those often; a Ctrl-C that lands there would otherwise be ignored and the
    run would train on to its end.
    """
    import keras

    class StopOnRequest(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if _STOP_REQUESTED.is_set():
                raise KeyboardInterrupt

        on_test_batch_end = on_train_batch_end

    return StopOnRequest()


def prepare_data(settings: TrainSettings):
    """Resolves --data (folders or 'lfw'), scans and splits: (train groups, their weights, val paths, skipped,
    fingerprint of the split).

    The split is over all sources whatever their weights, so re-weighting the sources of a run keeps its
    validation files; a source of weight 0 contributes only those. The fingerprint names every file and its
    side, relative to its --data root, so that --resume can refuse folders that changed.
    """
    from srmodel.data import download_lfw, load_exclusions, scan_images, split_paths

    roots: list[str | Path] = []
    for entry in settings.data:
        roots.append(download_lfw() if entry == "lfw" else entry)
    scan = scan_images(roots, load_exclusions(settings.exclude))
    train, val = split_paths(scan.paths, settings.val_split, settings.seed)
    if len(val) > settings.max_val_images:
        val = val[:: int(np.ceil(len(val) / settings.max_val_images))]
    fingerprint = _split_fingerprint(roots, scan, val)
    if settings.exclude:
        print(f"--exclude {settings.exclude}: {scan.excluded} file(s) left out")
        if scan.unmatched:
            shown = ", ".join(scan.unmatched[:5]) + (f" and {len(scan.unmatched) - 5} more" if len(scan.unmatched) > 5 else "")
            print(f"Warning: {len(scan.unmatched)} --exclude entries name no file under --data: {shown}", file=sys.stderr)
    if scan.duplicates:
        print(f"{scan.duplicates} file(s) found under more than one --data folder: each is used once")
    if settings.balance and len(roots) > 1:
        weights = settings.balance if isinstance(settings.balance, list) else [1.0] * len(roots)
        # A file belongs to the first source it was found in (nested or repeated folders share files).
        groups = [[p for p in train if scan.source[p] == i] for i in range(len(roots))]
        for root, group, weight in zip(roots, groups, weights, strict=True):
            if not group and weight > 0:
                print(f"Warning: --data {root} has no training images of its own (they are under an earlier --data "
                      "folder too, or all held out for validation), so its --balance weight is not used", file=sys.stderr)
        kept = [(g, w) for g, w in zip(groups, weights, strict=True) if g and w > 0]
        if not kept:
            raise DataError("No training images left after the split in the --data sources of non-zero --balance weight.")
        return [g for g, _ in kept], [w for _, w in kept], val, scan.skipped, fingerprint
    return [train], [1.0], val, scan.skipped, fingerprint


def _split_fingerprint(roots: list[str | Path], scan, val: list[Path]) -> str:
    held_out = set(val)
    lines = sorted(f"{scan.source[p]}:{os.path.relpath(p, roots[scan.source[p]])}:{'v' if p in held_out else 't'}"
                   for p in scan.paths)
    return hashlib.sha256("\n".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


def _pad_for_replicas(val_ds, count: int, replicas: int, batch_size: int):
    """tf.distribute cannot split a last batch of 1 over 2 devices: repeat crops until every batch splits evenly.

    Reuses the cached validation crops; only the per-epoch Keras validation sees the repeats, the final
    `evaluate` uses the plain dataset.
    """
    total = -(-count // replicas) * replicas
    return val_ds.unbatch().repeat().take(total).batch(batch_size)


def evaluate(model, val_ds, percent: float) -> dict:
    """Mean per-image PSNR/SSIM of the model, the pixelated input and bicubic upscaling, same crops."""
    import tensorflow as tf

    from srmodel.degrade import bicubic_from_small

    scores: dict[str, dict[str, list[float]]] = {k: {"psnr": [], "ssim": []} for k in ("model", "pixelated", "bicubic")}
    for pixelated, original in val_ds:
        restored = tf.clip_by_value(tf.cast(model(pixelated, training=False), tf.float32), 0.0, 1.0)
        bicubic = tf.constant(np.stack([bicubic_from_small(o, percent) for o in original.numpy()]))
        for name, images in (("model", restored), ("pixelated", pixelated), ("bicubic", bicubic)):
            scores[name]["psnr"].extend(tf.image.psnr(original, images, max_val=1.0).numpy().tolist())
            scores[name]["ssim"].extend(tf.image.ssim(original, images, max_val=1.0).numpy().tolist())
    result: dict[str, Any] = {}
    for name, values in scores.items():
        psnrs = np.minimum(np.asarray(values["psnr"]), 100.0)
        result[name] = {"psnr": round(float(psnrs.mean()), 3), "ssim": round(float(np.mean(values["ssim"])), 4)}
    result["images"] = len(scores["model"]["psnr"])
    return result


def write_samples(model, val_ds, path: Path, count: int = 4) -> None:
    """samples.png: rows of pixelated | model | original, enlarged ×2 so pixels are visible."""
    import cv2

    from srmodel.folder import atomic_write_bytes

    rows = []
    for pixelated, original in val_ds.unbatch().take(count):
        restored = np.clip(np.asarray(model(pixelated[None], training=False))[0], 0, 1)
        row = np.concatenate([pixelated.numpy(), restored, original.numpy()], axis=1)
        rows.append(row)
    grid = (np.concatenate(rows, axis=0) * 255).round().astype(np.uint8)
    grid = cv2.resize(grid, (grid.shape[1] * 2, grid.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    if ok:
        atomic_write_bytes(path, encoded.tobytes())


def float32_copy(model):
    """A float32 copy of the trained model without optimizer state, for publishing.

    It is cloned from the trained model itself rather than rebuilt from the run's settings, so the
    published file always holds exactly the layers that were trained: a run started before a release
    changed an architecture's defaults still exports after `--resume`.
    """
    from srmodel.precision import cast_model

    return cast_model(model, "float32")


def export_folder(model, settings: TrainSettings, metrics: dict, val_ds, extra: dict) -> Path:
    """Writes the publishable model folder: model.keras, config.json, metrics.json, README.md, samples.png."""
    import keras

    from srmodel import __version__
    from srmodel.folder import (
        CARD_FILE,
        CONFIG_FILE,
        FORMAT_VERSION,
        METRICS_FILE,
        MODEL_FILE,
        SAMPLES_FILE,
        atomic_save_model,
        atomic_write_bytes,
        atomic_write_json,
    )

    keras.mixed_precision.set_global_policy("float32")
    clean = float32_copy(model)
    out = Path(settings.out)
    training = {
        k: v for k, v in asdict(settings).items()
        if k not in ("out", "arch", "arch_kwargs", "threads", "logical_cpus", "percent_range", "val_percent")
        and not (k in ("teacher", "teacher_weight") and settings.teacher is None)
    }
    training.update(extra)
    config = {
        "format_version": FORMAT_VERSION,
        "srmodel_version": __version__,
        "architecture": {"name": settings.arch, "kwargs": settings.arch_kwargs},
        "pixelation": {
            "percent_range": list(settings.percent_range),
            "validation_percent": settings.val_percent,
            "interpolation": "INTER_AREA",
        },
        "training": training,
    }
    metrics_doc = {
        "validation": {"percent": settings.val_percent, "patch_size": settings.patch_size, **metrics},
    }
    keep_card = _card_edited_by_hand(out)
    atomic_save_model(clean, out / MODEL_FILE)
    atomic_write_json(out / CONFIG_FILE, config)
    atomic_write_json(out / METRICS_FILE, metrics_doc)
    from srmodel.modelcard import render_model_card

    if keep_card:
        print(f"note: {out / CARD_FILE} is not the card srmodel wrote for this run (edited by hand?), so it is kept as "
              "it is; its results may now be out of date. Delete it and --resume again for a fresh card.",
              file=sys.stderr)
    else:
        atomic_write_bytes(out / CARD_FILE, render_model_card(config, metrics_doc).encode("utf-8"))
    write_samples(clean, val_ds, out / SAMPLES_FILE)
    return out


def _card_edited_by_hand(out: Path) -> bool:
    """Whether the folder's model card differs from the one srmodel rendered from its config and metrics.

    A --resume exports again, and a card the user edited (to publish it, say) must not be overwritten unasked.
    """
    from srmodel.folder import CARD_FILE, CONFIG_FILE, METRICS_FILE, read_json
    from srmodel.modelcard import is_rendered_card

    try:
        card = (out / CARD_FILE).read_text(encoding="utf-8")
        return not is_rendered_card(card, read_json(out / CONFIG_FILE), read_json(out / METRICS_FILE))
    except (OSError, ModelLoadError, ValueError, TypeError, KeyError, AttributeError):
        return False  # no card yet, or no record of what it was rendered from: write one


def _process_is_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # os.kill(pid, 0) is not a harmless probe on Windows; trust the lock there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, but someone else's
    return True


def acquire_run_lock(out: Path) -> Path:
    """Claims a run folder for this process, so two trainings never write the same checkpoints.

    The lock holds the owner's PID: a lock left behind by a killed run (`kill -9`, a lost machine) is
    taken over, one held by a live process is refused with its PID.
    """
    path = out / CHECKPOINT_DIR / LOCK_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # A file on the way, a dangling link, a read-only disk.
        raise SRModelError(f"Cannot create the --out folder {out}: {exc.strerror or exc}. Choose another --out.") from None
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                owner = int(path.read_text(encoding="utf-8").strip() or 0)
            except (OSError, ValueError):
                owner = 0
            if owner and owner != os.getpid() and _process_is_alive(owner):
                raise SRModelError(
                    f"{out} is in use by another training process (pid {owner}). Wait for it to finish or stop it "
                    f"(Ctrl-C) first; if no training is running, delete {path}."
                ) from None
            path.unlink(missing_ok=True)  # left behind by a run that was killed
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(str(os.getpid()))
        return path
    raise SRModelError(f"Could not lock {path}: another process keeps creating it.")


def train(settings: TrainSettings, resume: bool = False) -> Path:
    """Runs (or resumes) a training run and writes the model folder; returns the folder."""
    if not resume:
        from srmodel.architectures import resolve_arguments

        # Unknown argument names fail before any data is read (bad values when the model is built); a resumed
        # run keeps the arguments it was started with.
        settings = replace(settings, arch_kwargs=resolve_arguments(settings.arch, settings.arch_kwargs))
    if settings.strategy == "multiworker":  # the workers of one run may share a folder
        return _train(settings, resume)
    # The folder the system will write to: "x/.." is the current folder even when x does not exist yet, and
    # "link/.." the parent of the link's target (Path.exists and os.path.normpath would get both wrong).
    settings = replace(settings, out=os.path.realpath(settings.out))
    out = Path(settings.out)
    if not resume:
        check_new_run_folder(out)
    missing = [folder for folder in (out / CHECKPOINT_DIR, out, *out.parents) if not folder.exists()]
    lock = acquire_run_lock(out)
    try:
        if resume:  # Ours alone now: what saves killed mid-write left behind can go.
            from srmodel.folder import FOLDER_FILES, remove_stale_temporaries

            remove_stale_temporaries(out, FOLDER_FILES)
            remove_stale_temporaries(out / CHECKPOINT_DIR, (LAST_CHECKPOINT, BEST_CHECKPOINT, STATE_FILE))
        return _train(settings, resume)
    finally:
        lock.unlink(missing_ok=True)
        if not (out / CHECKPOINT_DIR / STATE_FILE).exists():
            _remove_empty_folders(out if out in missing else None, missing)


def check_new_run_folder(out: Path) -> None:
    """A new run writes model.keras, config.json, README.md, ... into `out`: never over files it did not write."""
    if out.exists() and not out.is_dir():
        raise SRModelError(f"--out must be a folder, but {out} is a file. Choose another --out.")
    if (out / CHECKPOINT_DIR / STATE_FILE).exists():
        raise SRModelError(f"{out} already holds a training run. Use --resume to continue it or choose another --out.")
    if out.is_dir():
        found = next((p for p in out.rglob("*") if p.name != LOCK_FILE and not p.is_dir()), None)
        if found is not None:
            raise SRModelError(
                f"{out} already holds files that are not a training run (e.g. {found.relative_to(out)}), and a run "
                f"would overwrite some of them. Choose a new or empty --out folder."
            )


def _remove_empty_folders(ours: Path | None, created: list[Path]) -> None:
    """After a run that failed before its first checkpoint: removes the folders it created, if they are empty.

    `ours` is an --out folder the run created (every folder under it is the run's); `created` lists the other
    folders that did not exist before the run, deepest first. A folder that existed before is never touched.
    """
    inside = sorted((p for p in ours.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True) if ours else []
    for folder in [*inside, *created]:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _with_recovered_arguments(settings: TrainSettings, model) -> TrainSettings:
    """A resumed run records the arguments its checkpoint was built with, even if it predates them."""
    from srmodel.architectures import recover_arguments

    recovered = recover_arguments(settings.arch, model, settings.arch_kwargs)
    if recovered is None:
        print(f"Warning: could not tell which {settings.arch} arguments built this checkpoint; config.json will "
              f"record the ones the run started with: {settings.arch_kwargs}", file=sys.stderr)
        return settings
    return replace(settings, arch_kwargs=recovered)


def _cost(model: keras.Model) -> str:
    """", N multiply-adds per output pixel" for the start-up line: what the model will cost to run."""
    from srmodel.cost import multiply_adds_per_pixel

    try:
        return f", {multiply_adds_per_pixel(model):,.0f} multiply-adds per output pixel"
    except ValueError:  # a layer the count does not know: say nothing rather than something wrong
        return ""


def _train(settings: TrainSettings, resume: bool) -> Path:
    _configure_tensorflow(settings)
    import keras
    import tensorflow as tf

    import srmodel.layers  # noqa: F401  (custom layers, loss and metrics must be registered before
    import srmodel.losses  # noqa: F401   a compiled checkpoint is loaded on --resume)
    import srmodel.metrics  # noqa: F401
    from srmodel.architectures import build_model
    from srmodel.data import make_train_dataset, make_val_dataset

    out = Path(settings.out)
    state = read_state(out) if resume else None
    if resume and state is None:
        raise SRModelError(f"--resume: no interrupted run found in {out} (missing {CHECKPOINT_DIR}/{STATE_FILE}).")
    if not resume and (out / CHECKPOINT_DIR / STATE_FILE).exists():
        raise SRModelError(f"{out} already holds a training run. Use --resume to continue it or choose another --out.")

    print(f"Training on {describe_device()}")
    # The models a run starts from are loaded before the data scan (minutes for LFW), so a wrong name fails first.
    initial = None
    if settings.init_from and not resume:
        from srmodel.hub import load_parts

        initial = load_parts(settings.init_from)[:2]
    teacher = load_teacher(settings) if settings.teacher else None
    # The model too is built (or loaded) before the data scan: a bad --arch-kwargs value fails first.
    strategy = _make_strategy(settings)
    replicas = strategy.num_replicas_in_sync
    if settings.batch_size % replicas:
        raise SRModelError(f"--batch-size must be a multiple of the {replicas} replicas. Received: {settings.batch_size}")
    ckpt_dir = settings.checkpoint_dir
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    with strategy.scope():
        if resume:
            model = keras.saving.load_model(ckpt_dir / LAST_CHECKPOINT, safe_mode=True, compile=True)
            print(f"Resuming from epoch {state['epoch']} (best val PSNR so far {state.get('best_val_psnr', float('nan')):.2f} dB)")
            settings = _with_recovered_arguments(settings, model)
            state["settings"]["arch_kwargs"] = settings.arch_kwargs
            # What --resume may change is kept for the next --resume too.
            state["settings"].update(epochs=settings.epochs, max_minutes=settings.max_minutes, threads=settings.threads,
                                     patience=settings.patience)
        else:
            try:
                model = build_model(settings.arch, **settings.arch_kwargs)
            except (TypeError, ValueError) as exc:
                raise SRModelError(f"--arch-kwargs {json.dumps(settings.arch_kwargs)}: {exc}") from None
            if settings.init_from:
                _load_initial_weights(model, settings, *initial)
            _compile(model, settings, settings.epochs * settings.steps_per_epoch)
            state = {"epoch": 0, "settings": asdict(settings)}
    print(f"Model: {settings.arch} {settings.arch_kwargs or ''}, {model.count_params():,} parameters{_cost(model)}")

    train_groups, weights, val_paths, skipped, fingerprint = prepare_data(settings)
    if resume and "split_fingerprint" not in state:
        print("note: this run started before srmodel recorded its split, so --resume cannot check that the images "
              "under --data are those it started with; keep them unchanged", file=sys.stderr)
    if resume and state.get("split_fingerprint", fingerprint) != fingerprint:
        raise SRModelError(
            f"The images under --data are not those this run started with (files added, removed or renamed; a "
            f"relative --data is read from the current folder), so resuming would move files between training and "
            f"validation, and its validation scores would no longer be held out. Restore the folders as they were "
            f"(or --resume from the folder the run started in) to resume {out}, or start a new run."
        )
    state["split_fingerprint"] = fingerprint
    if resume:  # what --resume changed holds for the next --resume too, even when this one only exports
        from srmodel.folder import atomic_write_json

        atomic_write_json(ckpt_dir / STATE_FILE, state)
    train_paths = [p for group in train_groups for p in group]
    if skipped:
        print(f"Skipped {len(skipped)} unreadable file(s):", file=sys.stderr)
        for path, reason in skipped[:10]:
            print(f"  {path}: {reason}", file=sys.stderr)
        if len(skipped) > 10:
            print(f"  ... and {len(skipped) - 10} more", file=sys.stderr)
    print(f"Images: {len(train_paths)} for training, {len(val_paths)} for validation")
    if set(train_paths) & set(val_paths):  # split_paths does this only for a single image
        print("note: with a single image it serves for training and validation alike, so the validation score is "
              "not measured on unseen pixels; give --data at least two images for a held-out split", file=sys.stderr)
    if len(train_groups) > 1:
        counts = ", ".join(str(len(g)) for g in train_groups) + " images"
        if len(set(weights)) == 1:
            print(f"Sampling the --data sources equally: {counts}")
        else:
            print(f"Sampling the --data sources with weights {':'.join(f'{w:g}' for w in weights)}: {counts}")

    train_ds = make_train_dataset(
        train_groups, weights=weights, patch_size=settings.patch_size, batch_size=settings.batch_size,
        percent_range=settings.percent_range, min_scale=settings.min_scale, seed=settings.patch_seed,
    )
    if settings.teacher:
        train_ds = with_teacher_targets(train_ds, teacher, settings.teacher_weight)
    val_ds = make_val_dataset(val_paths, patch_size=settings.patch_size, batch_size=settings.batch_size,
                              percent=settings.val_percent)
    fit_val_ds = val_ds if replicas == 1 else _pad_for_replicas(val_ds, len(val_paths), replicas, settings.batch_size)

    log_dir = out / "logs"
    callbacks = [
        _make_stop_callback(),
        _make_checkpoint_callback(settings, state),
        _make_early_stopping(settings, state),
        keras.callbacks.CSVLogger(str(out / "training_log.csv"), append=resume),
        keras.callbacks.TensorBoard(log_dir=str(log_dir), update_freq="epoch", write_graph=False),
    ]
    spent = state.get("train_seconds", 0.0)
    budget_spent = bool(resume and settings.max_minutes and spent >= settings.max_minutes * 60)
    stopped_early = bool(resume and _stopped_early(state, settings.patience))
    ended, larger = [], []  # why a --resume has nothing to train, and what would let it train on
    if budget_spent:
        ended.append(f"the run has trained {spent / 60:.1f} min, all of its --max-minutes {settings.max_minutes:g}")
        larger.append("--max-minutes")
    if resume and state["epoch"] >= settings.epochs:
        ended.append(f"the run has finished all of its --epochs {settings.epochs}")
        larger.append("--epochs")
    if stopped_early:
        waited = _epochs_without_gain(state)
        ended.append(f"early stopping ends the run (validation PSNR has not improved for {waited} epoch(s), "
                     f"--patience {settings.patience})")
        larger.append("--patience")
    if ended:
        message = "; ".join(ended)
        print(f"{message[0].upper()}{message[1:]}. Nothing to train, exporting it. Pass a larger "
              f"{' and a larger '.join(larger)} with --resume to train on.")
    _STOP_REQUESTED.clear()
    # A SIGINT that the parent chose to ignore (a background job of a script) stays ignored.
    handled = [signal.SIGTERM] + ([signal.SIGINT] if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN else [])
    previous = {sig: signal.signal(sig, _interrupt) for sig in handled}
    try:
        if not (budget_spent or stopped_early):
            model.fit(
                train_ds, validation_data=fit_val_ds, epochs=settings.epochs, initial_epoch=state["epoch"],
                steps_per_epoch=settings.steps_per_epoch, callbacks=callbacks, shuffle=False,
                verbose=1 if sys.stdout.isatty() else 2,
            )
    except KeyboardInterrupt:
        from srmodel.folder import atomic_save_model, atomic_write_json

        atomic_save_model(model, ckpt_dir / LAST_CHECKPOINT)
        atomic_write_json(ckpt_dir / STATE_FILE, state)
        print(
            f"\nInterrupted after {state['epoch']} complete epoch(s); the weights so far are saved too, and the run "
            f"goes on with epoch {state['epoch'] + 1}. Continue with:\n"
            f"  python train.py --resume --out {out}",
            file=sys.stderr,
        )
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    try:
        best_path = ckpt_dir / BEST_CHECKPOINT
        export_best = settings.keep == "best" and best_path.exists()
        if export_best:
            model = keras.saving.load_model(best_path, safe_mode=True, compile=False)
        metrics = evaluate(model, val_ds, settings.val_percent)
        extra = {
            "validation_held_out": not set(train_paths) & set(val_paths),
            "epochs_completed": state["epoch"],
            "best_epoch": state.get("best_epoch"),
            "exported_epoch": state.get("best_epoch") if export_best else state["epoch"],
            "train_images": len(train_paths),
            "val_images": len(val_paths),
            "skipped_files": len(skipped),
            "train_seconds": round(state.get("train_seconds", 0.0), 1),
            "device": describe_device(),
            "tensorflow_version": tf.__version__,
        }
        folder = export_folder(model, settings, metrics, val_ds, extra)
        print(
            f"Validation at {settings.val_percent:g} % pixelation ({metrics['images']} crop"
            f"{'' if metrics['images'] == 1 else 's'}): "
            f"model {metrics['model']['psnr']:.2f} dB / SSIM {metrics['model']['ssim']:.4f}, "
            f"pixelated {metrics['pixelated']['psnr']:.2f} dB, bicubic {metrics['bicubic']['psnr']:.2f} dB"
        )
        print(f"Model folder written to {folder}")
        return folder
    except KeyboardInterrupt:  # Every file is written atomically: the folder keeps its previous state.
        print(f"\nInterrupted while exporting the model folder; the training itself is saved. Pick it up with:\n"
              f"  python train.py --resume --out {out}", file=sys.stderr)
        raise


__all__ = ["TrainSettings", "train", "read_state", "DataError"]
