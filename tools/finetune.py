"""Fine-tune a saved srmodel model on any Keras 3 backend (JAX, PyTorch or TensorFlow), for a fixed time.

`train.py` is the way to train; its input pipeline is tf.data, so it needs TensorFlow. This script is for
a machine that has Keras with JAX or PyTorch but no TensorFlow, such as a GPU lent for a few minutes:
it draws patches with `srmodel.patches` (train.py's recipe in NumPy and OpenCV), measures its own
throughput first, then fits with Adam and train.py's cosine decay sized so the schedule ends when the
time does. It writes `model.keras` (float32), `finetune.json` and, when --init sits in a model folder, that
folder's `config.json` with this fine-tune as its training record, after every epoch; score the result with
`bench/validation.py` like any run.

    KERAS_BACKEND=jax python tools/finetune.py --init srmodel/bundled/default/model.keras \\
        --data ../shared/data/faces/lfw --data ../shared/data/train --balance \\
        --exclude bench/lfw_holdout.txt --min-scale 0.3 --minutes 6 --out runs/finetuned
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srmodel.errors import SRModelError  # noqa: E402
from srmodel.folder import atomic_save_model, atomic_write_json  # noqa: E402
from srmodel.patches import PatchSampler, load_images  # noqa: E402
from srmodel.training import TrainSettings, prepare_data  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--init", required=True, help="model.keras to start from")
    parser.add_argument("--data", action="append", required=True, help="image folder (repeatable)")
    parser.add_argument("--balance", action="store_true", help="draw each --data folder equally often")
    parser.add_argument("--exclude", help="file of relative paths to leave out (e.g. bench/lfw_holdout.txt)")
    parser.add_argument("--val-split", type=float, default=0.2, help="held out exactly as train.py does")
    parser.add_argument("--no-split", action="store_true",
                        help="the --data folders already hold only training files (a copy of a split's train side)")
    parser.add_argument("--seed", type=int, default=0,
                        help="picks the validation split as train.py's --seed does (and, without --sample-seed, the patches)")
    parser.add_argument("--sample-seed", type=int,
                        help="draw other patches than --seed would, keeping its split: for a fine-tune that continues "
                             "one of the same --seed")
    parser.add_argument("--minutes", type=float, required=True, help="time for the fit itself")
    parser.add_argument("--batch-size", type=int, default=64, help="patches per step (default 64)")
    parser.add_argument("--patch-size", type=int, default=80, help="training crop size in pixels (default 80)")
    parser.add_argument("--learning-rate", type=float, default=2e-4,
                        help="Adam's peak rate, cosine-decayed to the end of --minutes (default 2e-4)")
    parser.add_argument("--min-scale", type=float, default=1.0,
                        help="random downscale of source images before cropping, as train.py's (default 1: off)")
    parser.add_argument("--percent-range", type=float, nargs=2, default=(20.0, 60.0), metavar=("LOW", "HIGH"),
                        help="pixelation percent drawn per patch (default 20 60)")
    parser.add_argument("--workers", type=int, default=12, help="processes drawing patches")
    parser.add_argument("--probe-steps", type=int, default=300, help="steps timed before the fit is planned")
    parser.add_argument("--steps-per-epoch", type=int, default=200, help="steps between saved copies")
    parser.add_argument("--out", required=True, help="a new or empty folder for the fine-tuned model")
    args = parser.parse_args(argv)
    if not Path(args.init).is_file():
        parser.error(f"--init: no such model file. Received: {args.init!r}")
    for name in ("minutes", "batch_size", "workers", "probe_steps", "steps_per_epoch"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive. Received: {getattr(args, name)}")
    try:  # the options train.py shares are checked by train.py's own rules, before any image is decoded
        train_settings(args)
    except ValueError as exc:
        parser.error(str(exc))
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        parser.error(f"--out must be a new or empty folder (this script overwrites what it writes there, and "
                     f"--init's own folder least of all). Received: {args.out!r}")
    return args


def train_settings(args: argparse.Namespace) -> TrainSettings:
    """train.py's settings for these arguments, so the split, the seeds and the checks follow train.py's rules."""
    return TrainSettings(
        data=args.data, out=args.out, exclude=args.exclude, balance=args.balance, seed=args.seed,
        sample_seed=args.sample_seed, val_split=args.val_split, batch_size=args.batch_size,
        patch_size=args.patch_size, learning_rate=args.learning_rate, min_scale=args.min_scale,
        percent_range=tuple(args.percent_range),
    )


def training_groups(args: argparse.Namespace) -> list[list[Path]]:
    """The same files train.py trains on for these arguments (its scan, split and balancing)."""
    if not args.no_split:
        groups, *_ = prepare_data(train_settings(args))
        return groups
    from srmodel.data import load_exclusions, scan_images

    excluded = load_exclusions(args.exclude)
    if args.balance:
        return [scan_images([root], excluded).paths for root in args.data]
    return [scan_images(args.data, excluded).paths]


def _fill_queue(sampler: PatchSampler, batches, batch_size: int, seed: int) -> None:
    """A worker process's loop: draw batches until killed (`put` blocks while the queue is full)."""
    import cv2

    cv2.setNumThreads(1)
    rng = np.random.default_rng(seed)
    while True:
        batches.put(sampler.batch(batch_size, rng))


class BatchStream:
    """Batches drawn by forked worker processes (Python-heavy patch cutting does not scale in threads).

    The queue is bounded, so a slow consumer never piles batches up. `close` kills the workers outright:
    on the lent GPU a `multiprocessing.Pool.terminate()` hung for minutes after the last epoch.
    """

    def __init__(self, sampler: PatchSampler, batch_size: int, workers: int, seed: int, depth: int = 48,
                 poll_s: float = 10.0):
        import multiprocessing

        self._poll_s = poll_s

        context = multiprocessing.get_context("fork")  # the decoded images are shared copy-on-write
        self._batches = context.Queue(maxsize=depth)
        seeds = np.random.SeedSequence(seed).generate_state(workers)
        self._workers = [
            context.Process(target=_fill_queue, args=(sampler, self._batches, batch_size, int(s)), daemon=True)
            for s in seeds
        ]
        for worker in self._workers:
            worker.start()

    def __iter__(self):
        import queue

        while True:
            try:
                yield self._batches.get(timeout=self._poll_s)
            except queue.Empty:  # slow workers, or dead ones: waiting on those would hang the run for good
                if not any(worker.is_alive() for worker in self._workers):
                    codes = sorted({worker.exitcode for worker in self._workers})
                    raise SRModelError(f"every patch worker died (exit codes {codes}); its error is above") from None

    def close(self) -> None:
        for worker in self._workers:
            worker.kill()
        for worker in self._workers:
            worker.join(timeout=5)
        self._batches.cancel_join_thread()
        self._batches.close()


def folder_config(init: Path) -> dict | None:
    """The config.json beside --init, if any: the output's architecture and pixelation (the layers do not change)."""
    source = init.parent / "config.json"
    return json.loads(source.read_text(encoding="utf-8")) if source.is_file() else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import keras

    import srmodel.layers  # noqa: F401  (registers the custom layers)
    from srmodel.losses import charbonnier

    out = Path(args.out)
    started = time.time()
    groups = training_groups(args)
    images = [load_images(group) for group in groups]
    out.mkdir(parents=True, exist_ok=True)  # only now: a run stopped by bad data leaves no empty folder behind
    print(f"Backend {keras.backend.backend()}; images per source: {[len(g) for g in images]} "
          f"(decoded in {time.time() - started:.0f} s)", flush=True)
    sampler = PatchSampler(images, patch_size=args.patch_size, percent_range=tuple(args.percent_range),
                           min_scale=args.min_scale)
    batches = BatchStream(sampler, args.batch_size, args.workers, train_settings(args).patch_seed)

    model = keras.saving.load_model(args.init, compile=False, safe_mode=True)
    # Throughput first, at a learning rate of 0 (Adam then leaves the weights exactly as they are).
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.0), loss=charbonnier)
    # The warm-up compiles and drains the batches queued meanwhile, so the timed steps see the steady rate.
    model.fit(iter(batches), steps_per_epoch=max(20, args.probe_steps // 3), epochs=1, verbose=0)
    tick = time.time()
    model.fit(iter(batches), steps_per_epoch=args.probe_steps, epochs=1, verbose=0)
    step_seconds = (time.time() - tick) / args.probe_steps
    steps_per_epoch = args.steps_per_epoch
    epochs = max(1, int(args.minutes * 60 / step_seconds / steps_per_epoch))
    total = epochs * steps_per_epoch
    print(f"{step_seconds * 1000:.1f} ms per step of {args.batch_size}: {epochs} epochs of {steps_per_epoch} "
          f"steps ({total * args.batch_size:,} patches)", flush=True)

    # Each epoch leaves a loadable model (without optimizer state, the size it started at) and the record
    # so far: a run cut short by its machine's time limit still returns its latest weights and history.
    final = keras.saving.load_model(args.init, compile=False, safe_mode=True)
    base_config = folder_config(Path(args.init))
    fit_started = time.time()
    record = {
        "init": args.init, "backend": keras.backend.backend(), "data": args.data, "balance": args.balance,
        "exclude": args.exclude, "no_split": args.no_split, "val_split": None if args.no_split else args.val_split,
        "seed": args.seed, "sample_seed": args.sample_seed, "min_scale": args.min_scale,
        "percent_range": list(args.percent_range), "batch_size": args.batch_size,
        "patch_size": args.patch_size, "learning_rate": args.learning_rate, "loss": "charbonnier",
        "setup_seconds": round(fit_started - started, 1), "ms_per_step": round(step_seconds * 1000, 2),
        "steps_planned": total,
    }

    class SaveCopy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            final.set_weights(self.model.get_weights())
            atomic_save_model(final, out / "model.keras")  # a kill mid-save keeps the previous epoch's file
            steps = (epoch + 1) * steps_per_epoch
            record.update(steps=steps, patches=steps * args.batch_size, loss=float((logs or {}).get("loss", "nan")),
                          fit_seconds=round(time.time() - fit_started, 1))
            atomic_write_json(out / "finetune.json", record)
            if base_config is not None:  # so srmodel and the benchmarks load --out as a model folder
                training = {"tool": "tools/finetune.py", "init_from": str(Path(args.init).parent), **record}
                atomic_write_json(out / "config.json", {**base_config, "training": training})

    class Deadline(keras.callbacks.Callback):
        """Stops at 115 % of --minutes should the rate drop (the schedule then ends a little early)."""

        def on_train_batch_end(self, batch, logs=None):
            if time.time() - fit_started > args.minutes * 60 * 1.15:
                self.model.stop_training = True

    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, decay_steps=total, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule), loss=charbonnier)
    model.fit(
        iter(batches), steps_per_epoch=steps_per_epoch, epochs=epochs, verbose=2,
        callbacks=[keras.callbacks.CSVLogger(str(out / "finetune_log.csv")), SaveCopy(), Deadline()],
    )
    batches.close()
    print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except SRModelError as exc:  # bad --data and the like: a message, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
