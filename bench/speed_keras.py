"""Speed of whole-image inference on whichever Keras 3 backend is active (JAX, PyTorch or TensorFlow).

    KERAS_BACKEND=jax python bench/speed_keras.py              # bundled models, 256² 512² 2048²
    KERAS_BACKEND=torch python bench/speed_keras.py --model mine=runs/exp1 --sizes 512

`bench/speed.py` is the benchmark: it times srmodel's own inference (tiling, precision, peers, peak
memory), which runs on TensorFlow. This script is for machines that have Keras with another backend but no
TensorFlow, such as a lent GPU: it times `model.predict_on_batch` on one image of each size (batch 1,
float32, host-to-device copies included), once to compile and warm up, then --repeats times, and prints
the median as output megapixels per second.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import common
import numpy as np
from speed import time_workload


def model_files(specs: list[str] | None) -> list[tuple[str, Path]]:
    """`--model NAME=FOLDER` (or NAME=FILE.keras) as the other benchmarks parse it; the bundled models by default."""
    models = []
    for name, path in common.parse_model_specs(specs):
        file = path / "model.keras" if path.is_dir() else path
        if not file.is_file():
            raise SystemExit(f"--model {name}: no model file at {file}")
        models.append((name, file))
    return models


def device_name() -> str:
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return ", ".join(d.device_kind for d in jax.devices())
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return "see tf.config.list_physical_devices()"


def time_model(model, size: int, repeats: int) -> dict:
    x = np.random.default_rng(size).random((1, size, size, 3), dtype=np.float32)
    # The warm-up run also compiles for this shape.
    times = time_workload(lambda: np.asarray(model.predict_on_batch(x)), repeats, budget_s=None)
    median = statistics.median(times)
    return {"size": size, "runs": repeats, "median_s": round(median, 6), "mp_per_s": round(size * size / 1e6 / median, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", metavar="NAME=FOLDER", help="model to time (repeatable)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 2048], help="square input sides")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per cell (median is reported)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    common.check_json_path(parser, args.json)
    if args.repeats < 1 or any(size < 1 for size in args.sizes):
        parser.error(f"--repeats and --sizes must be positive. Received: {args.repeats}, {args.sizes}")
    models = model_files(args.model)

    import keras

    import srmodel.layers  # noqa: F401  (registers the custom layers)

    device = device_name()
    print(f"Keras {keras.__version__} on {keras.backend.backend()}; device: {device}\n")
    print("| model | " + " | ".join(f"{s}² MP/s" for s in args.sizes) + " |")
    print("|---|" + "---:|" * len(args.sizes))
    results = []
    for name, path in models:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
        cells = [time_model(model, size, args.repeats) for size in args.sizes]
        results.append({"model": name, "path": str(path), "cells": cells})
        print(f"| {name} | " + " | ".join(f"{c['mp_per_s']:.1f}" for c in cells) + " |", flush=True)
    if args.json:
        report = {"backend": keras.backend.backend(), "keras": keras.__version__, "device": device, "results": results}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
