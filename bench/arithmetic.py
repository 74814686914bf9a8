"""Arithmetic bound: how fast a model can run on this CPU, from its multiply-adds per output pixel.

    python bench/arithmetic.py                                  # the bundled models
    python bench/arithmetic.py --model mine=runs/exp1 --matmul-size 4096

A convolution network on a CPU is bound by its multiply-adds, so its speed is about the rate of a large
matrix multiply (about the best oneDNN does) divided by the multiply-adds it spends per output pixel. This
script measures that rate in float32 and bfloat16 and prints each model's count and the speed it gives.
Compare with `bench/speed.py`: a model timed well below its figure has overhead a leaner graph could win
back; one timed at it can only get faster with fewer multiply-adds (or narrower numbers).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import common

PRECISIONS = ("float32", "bfloat16")


def matmul_rate(size: int, dtype: str, repeats: int) -> float:
    """Billions of multiply-adds per second of a size×size matrix product (median of `repeats`)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    with tf.device("/CPU:0"):  # the cores' rate, even where a GPU is there
        a = tf.constant(rng.random((size, size), "float32"), dtype=dtype)
        b = tf.constant(rng.random((size, size), "float32"), dtype=dtype)

    @tf.function
    def product():
        with tf.device("/CPU:0"):
            return tf.matmul(a, b)

    product().numpy()  # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        product().numpy()
        times.append(time.perf_counter() - start)
    return size**3 / statistics.median(times) / 1e9


def format_table(rows: list[dict]) -> str:
    """Markdown table of each model's count and the speed it allows; "-" where the count was impossible."""
    header = "| model | multiply-adds per output pixel | " + " | ".join(
        f"at the {p} matmul rate (MP/s)" for p in PRECISIONS) + " |"
    lines = [header, "|---|---:|" + "---:|" * len(PRECISIONS)]
    for row in rows:
        macs, bounds = row["multiply_adds_per_pixel"], row["bound_mp_per_s"]
        cells = " | ".join("-" if bounds[p] is None else f"{bounds[p]:.2f}" for p in PRECISIONS)
        lines.append(f"| {row['name']} | {'-' if macs is None else f'{macs:,.0f}'} | {cells} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line; sizes and repeats below 1 exit with status 2."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", metavar="NAME=FOLDER",
                        help="model folder to count (repeatable; default: the bundled models)")
    parser.add_argument("--matmul-size", type=int, default=2048, help="side of the square matrices multiplied")
    parser.add_argument("--repeats", type=int, default=7, help="timed products per precision (median is reported)")
    parser.add_argument("--json", type=Path, default=common.RESULTS_DIR / "arithmetic.json", help="JSON output path")
    args = parser.parse_args(argv)
    common.check_json_path(parser, args.json)
    if args.matmul_size < 1 or args.repeats < 1:
        parser.error(f"--matmul-size and --repeats must be >= 1. Received: {args.matmul_size}, {args.repeats}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Time the matrix products, count each model, print the table and write the JSON."""
    args = parse_args(argv)
    notes: list[str] = []
    models = common.available_models(common.parse_model_specs(args.model), notes)
    from srmodel.cost import multiply_adds_per_pixel
    from srmodel.folder import load_model_folder
    from srmodel.precision import cpu_has_native_bfloat16

    rates = {p: matmul_rate(args.matmul_size, p, args.repeats) for p in PRECISIONS}
    if not cpu_has_native_bfloat16():
        notes.append("this CPU has no native bfloat16 (AVX512-BF16 or AMX): `auto` runs float32 here")
    rows = []
    for name, folder in models:
        try:
            macs = multiply_adds_per_pixel(load_model_folder(folder)[0])
        except ValueError as exc:  # a layer the count does not know: say so rather than guess
            notes.append(f"{name}: not counted ({exc})")
            macs = None
        bounds = {p: rates[p] * 1e9 / macs / 1e6 if macs else None for p in PRECISIONS}  # JSON has no infinity
        rows.append({"name": name, "folder": str(folder), "multiply_adds_per_pixel": macs,
                     "bound_mp_per_s": bounds})
    print(f"Device: {common.cpu_description()}")
    print(f"Matrix multiply {args.matmul_size}², median of {args.repeats}: "
          + ", ".join(f"{p} {rates[p]:.0f} GMAC/s" for p in PRECISIONS) + "\n")
    print(format_table(rows))
    if notes:
        print("\n" + "\n".join(f"Note: {note}" for note in notes))
    payload = {"device": common.cpu_description(), "matmul_size": args.matmul_size, "repeats": args.repeats,
               "gmac_per_s": rates, "notes": notes, "models": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"\nWrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(common.run_main(main))
