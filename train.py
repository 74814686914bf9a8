#!/usr/bin/env python
"""Train a model that restores pixelated images, evaluate it, and optionally publish it to the Hub.

    python train.py --data path/to/photos --epochs 20 --out runs/my-model
    python train.py --data lfw --out runs/faces --push --repo-id USER/NAME
    python train.py --resume --out runs/my-model          # continue an interrupted run

The output folder is ready to publish: model.keras, config.json, metrics.json, README.md, samples.png.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter hides our messages

# srmodel is imported only after the arguments parse: `import srmodel` loads Keras and TensorFlow (seconds),
# which --help, and a typo in an option, should not wait for.


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--data", action="append", metavar="DIR",
                      help="folder of images, searched recursively (repeatable), or 'lfw' to download LFW")
    data.add_argument("--exclude", metavar="LIST", help="file of relative image paths to leave out (e.g. a holdout)")
    data.add_argument("--balance", nargs="*", type=float, metavar="WEIGHT",
                      help="draw training patches from each --data source equally (bare --balance) or with one "
                           "weight per source, e.g. --balance 1 3 (a source with weight 0 only serves validation)")
    data.add_argument("--val-split", type=float, default=0.2, help="fraction of files for validation (default 0.2)")
    data.add_argument("--patch-size", type=int, default=80, help="training crop size in pixels (default 80)")
    data.add_argument("--min-scale", type=float, default=1.0,
                      help="random downscale of source images before cropping, e.g. 0.35 (default 1: off)")
    data.add_argument("--percent-range", type=float, nargs=2, default=(20.0, 60.0), metavar=("LOW", "HIGH"),
                      help="pixelation percent drawn per training patch (default 20 60)")
    data.add_argument("--val-percent", type=float, default=40.0, help="fixed pixelation for validation (default 40)")

    model = p.add_argument_group("model and optimisation")
    model.add_argument("--arch", default="default", help="architecture: default (the default) or tutorial-autoencoder")
    model.add_argument("--arch-kwargs", default="{}", metavar="JSON", help='e.g. \'{"filters": 48, "blocks": 6}\'')
    model.add_argument("--epochs", type=int, help="maximum epochs (default 20)")
    model.add_argument("--steps-per-epoch", type=int, default=200, help="training steps per epoch (default 200)")
    model.add_argument("--batch-size", type=int, default=16, help="patches per step (default 16)")
    model.add_argument("--learning-rate", type=float, default=1e-3,
                       help="peak learning rate, cosine decay (default 1e-3, for a new model; fine-tunes with "
                            "--init-from want far less, e.g. 5e-5)")
    model.add_argument("--loss", choices=["mse", "l1", "charbonnier", "psnr"], default="mse",
                       help="default mse; psnr: minus each patch's PSNR, so every patch's gain counts in dB "
                            "(see srmodel/losses.py)")
    model.add_argument("--patience", type=int,
                       help="early stopping patience on validation PSNR, in epochs (default 10)")
    model.add_argument("--keep", choices=["best", "last"], default="best",
                       help="epoch to export: best validation PSNR (default), or the last one, e.g. when --balance "
                            "weights favour sources the validation crops under-represent")
    model.add_argument("--max-minutes", type=float, help="stop once the run has trained this long in all, over every --resume (checked per epoch)")
    model.add_argument("--seed", type=int, default=0, help="picks the validation split (and the patches)")
    model.add_argument("--sample-seed", type=int,
                       help="draw other patches than --seed would, keeping its validation split: for a fine-tune "
                            "that continues a run of the same --seed")
    model.add_argument("--init-from", metavar="SOURCE",
                       help="fine-tune: start from a model folder, Hub repo id or 'bundled' (same --arch; --arch-kwargs may add or remove residual blocks)")
    model.add_argument("--teacher", metavar="SOURCE",
                       help="distil: train towards a blend of this model's outputs (a model folder, Hub repo id or "
                            "'bundled') and the originals; validation still scores against the originals")
    model.add_argument("--teacher-weight", type=float, default=None, metavar="W",
                       help="share of the teacher's output in the training target, in (0, 1] (default 0.5)")

    run = p.add_argument_group("run")
    run.add_argument("--out", required=True, help="output folder (model folder + checkpoints + logs)")
    run.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    run.add_argument("--strategy", choices=["default", "mirrored", "multiworker"], default="default",
                     help="tf.distribute strategy (mirrored: all local GPUs)")
    run.add_argument("--mixed-precision", nargs="?", const="float16", choices=["float16", "bfloat16"], default=False,
                     help="16-bit compute: float16 (GPUs; the default when no type is named) or bfloat16 "
                          "(CPUs with AVX512-BF16 or AMX: about 2x faster steps)")
    run.add_argument("--jit", action="store_true", help="XLA-compile the training step")
    run.add_argument("--threads", type=int, help="CPU threads for TensorFlow (default: all)")
    run.add_argument("--logical-cpus", type=int, default=0, help=argparse.SUPPRESS)  # tests of --strategy mirrored

    hub = p.add_argument_group("publish to the Hugging Face Hub")
    hub.add_argument("--push", action="store_true", help="upload the model folder after training")
    hub.add_argument("--repo-id", help="USER/NAME of the model repo")
    hub.add_argument("--private", action="store_true", help="create the repo as private (if it is new)")
    hub.add_argument("--revision", help="branch to push to (created if missing)")
    return p


# What --resume may change: how long the run goes on and how many threads it uses. Everything else
# defines the run (its data, split, model and optimiser) and stays as it was started.
RESUMABLE_OPTIONS = ("epochs", "max_minutes", "patience", "threads")


def options_given(argv: list[str] | None) -> set[str]:
    """The options present on the command line (by dest), whatever their values, defaults included."""
    probe = build_parser()
    for action in probe._actions:  # noqa: SLF001  (argparse keeps no public list of its actions)
        action.default = argparse.SUPPRESS  # absent from the namespace unless given
    return set(vars(probe.parse_args(argv)))


def _as_path(entry):
    """A path option's value in one spelling ("photos/", "./photos", "/abs/photos"); names such as lfw, bundled
    or a Hub repo id as they are."""
    if not isinstance(entry, str) or entry in ("lfw", "bundled") or not os.path.exists(os.path.expanduser(entry)):
        return entry
    return os.path.realpath(os.path.expanduser(entry))


def _ignored_on_resume(args: argparse.Namespace, given: set[str], saved: dict) -> list[str]:
    """Run-defining options given to --resume with another value than the run has (so they are ignored).

    Repeating the run's own command with --resume added names nothing: only values that differ count.
    """
    skip = {"out", "resume", "push", "repo_id", "private", "revision", *RESUMABLE_OPTIONS}
    ignored = []
    for dest in sorted(given - skip):
        value = getattr(args, dest)
        if dest == "arch_kwargs":
            try:
                typed = json.loads(value)
            except json.JSONDecodeError:
                typed = None
            run_kwargs = saved.get("arch_kwargs") or {}
            same = isinstance(typed, dict) and all(run_kwargs.get(k) == v for k, v in typed.items())
        elif dest == "balance":
            same = (value or True) == saved.get("balance")
        elif dest == "percent_range":
            same = list(value) == list(saved.get(dest) or [])
        elif dest == "data":
            same = [_as_path(v) for v in value] == [_as_path(v) for v in saved.get("data") or []]
        elif dest in ("exclude", "init_from", "teacher"):
            same = _as_path(value) == _as_path(saved.get(dest))
        else:
            same = saved.get(dest) == value
        if not same:
            shown = json.dumps(list(saved[dest]) if isinstance(saved.get(dest), tuple) else saved.get(dest))
            ignored.append(f"--{dest.replace('_', '-')} (the run's: {shown})")
    return ignored


def settings_from_args(args: argparse.Namespace, given: set[str] | None = None):
    from srmodel.errors import SRModelError
    from srmodel.training import TrainSettings, read_state

    if args.resume:
        state = read_state(args.out)
        if state is None:
            raise SRModelError(f"--resume: no interrupted run found in {args.out}")
        saved = dict(state["settings"])
        saved["percent_range"] = tuple(saved["percent_range"])
        for option in RESUMABLE_OPTIONS:
            if getattr(args, option) is not None:
                saved[option] = getattr(args, option)
        saved["out"] = args.out
        ignored = _ignored_on_resume(args, set() if given is None else given, saved)
        if ignored:
            print(f"note: --resume continues the run as it was started (only "
                  f"{', '.join('--' + o.replace('_', '-') for o in RESUMABLE_OPTIONS)} can change); ignored, as the "
                  f"run has other values: {'; '.join(ignored)}. Relative paths are the run's as typed where it "
                  "started.", file=sys.stderr)
        return TrainSettings(**saved)
    if not args.data:
        raise SRModelError("--data is required (a folder of images, or 'lfw'). Received: nothing")
    if args.teacher_weight is not None and not args.teacher:
        raise SRModelError(f"--teacher-weight needs --teacher. Received: --teacher-weight {args.teacher_weight:g} alone")
    if args.teacher_weight is not None and not 0 < args.teacher_weight <= 1:
        raise SRModelError(f"--teacher-weight must be in (0, 1]. Received: {args.teacher_weight:g}")
    try:
        arch_kwargs = json.loads(args.arch_kwargs)
    except json.JSONDecodeError as exc:
        raise SRModelError(f"--arch-kwargs must be JSON. Received: {args.arch_kwargs!r} ({exc})") from None
    return TrainSettings(
        data=args.data, out=args.out, arch=args.arch, arch_kwargs=arch_kwargs,
        epochs=20 if args.epochs is None else args.epochs,
        steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size, patch_size=args.patch_size,
        learning_rate=args.learning_rate, loss=args.loss, seed=args.seed, sample_seed=args.sample_seed,
        val_split=args.val_split, val_percent=args.val_percent, percent_range=tuple(args.percent_range), min_scale=args.min_scale,
        patience=10 if args.patience is None else args.patience, keep=args.keep, max_minutes=args.max_minutes,
        exclude=args.exclude,
        init_from=args.init_from, teacher=args.teacher, teacher_weight=args.teacher_weight,
        balance=_balance(args.balance, args.data), strategy=args.strategy,
        mixed_precision=args.mixed_precision, jit=args.jit, threads=args.threads, logical_cpus=args.logical_cpus,
    )


def _balance(weights: list[float] | None, data: list[str]) -> bool | list[float]:
    """--balance: absent (False), bare (True: equal) or one non-negative weight per --data source."""
    from srmodel.errors import SRModelError

    if weights is None:
        return False
    if not weights:
        return True
    received = " ".join(f"{w:g}" for w in weights)
    if len(weights) != len(data):
        raise SRModelError(
            f"--balance takes one weight per --data source ({len(data)}), or none for equal weights. Received: {received}"
        )
    if any(not 0 <= w < math.inf for w in weights) or not 0 < sum(weights) < math.inf:
        raise SRModelError(f"--balance weights must be finite, non-negative and not all zero. Received: {received}")
    return weights


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from srmodel.errors import SRModelError

    try:
        if args.push:
            if not args.repo_id:
                raise SRModelError("--push needs --repo-id USER/NAME")
            from srmodel.hub import check_write_access

            user = check_write_access(args.repo_id)  # before any data is read: fail in seconds
            print(f"Hub: logged in as {user}; will push to {args.repo_id}")
        settings = settings_from_args(args, options_given(argv) if args.resume else None)
        from srmodel.training import train

        folder = train(settings, resume=args.resume)
        if args.push:
            from srmodel.hub import push_folder

            try:
                url = push_folder(folder, args.repo_id, private=args.private, revision=args.revision)
            except SRModelError as exc:
                retry = shlex.join(["python", "-m", "srmodel", "push", str(folder), "--repo-id", args.repo_id,
                                    *(["--private"] if args.private else []),
                                    *(["--revision", args.revision] if args.revision else [])])
                raise SRModelError(f"{exc}\nThe trained model is kept in {folder}; publish it later with:\n  {retry}") from None
            print(f"Published: {url}")
    except KeyboardInterrupt:
        from srmodel.training import interrupted_exit_status

        return interrupted_exit_status()
    except (SRModelError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
