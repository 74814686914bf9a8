"""Probe: what would 8-bit integer inference buy, and cost? (A measurement, not a runtime path.)

    python bench/int8_probe.py                                  # bundled default, B100 and Set14, first 20
    python bench/int8_probe.py --model mine=runs/exp1 --sets set5 --limit 5 --calibration 20

Converts a model to TensorFlow Lite twice, in float32 and with post-training int8 quantisation
(calibrated on pixelated crops of the *training* folders, never the benchmarks), then prints:

- PSNR of the Keras model (float32) and of the int8 model on the first --limit images of each set,
  pixelated at --percent, next to bicubic: what quantisation costs in quality;
- output megapixels per second of both TFLite models on one --size² image (XNNPACK, all CPU threads,
  untiled, best of --repeats): what it buys in speed.

`tf.lite` ships with TensorFlow 2.21 but is deprecated in favour of LiteRT (`ai-edge-litert`), which
is one reason this stays a probe. docs/design.md has the numbers it printed for the bundled model.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import common
import numpy as np
from quality import baseline_methods, iter_images, read_rgb, tally_images
from speed import make_input, time_workload

CALIBRATION_FOLDERS = ("train/T91", "train/BSD200", "faces/lfw")
CALIBRATION_CROP = 96


def calibration_samples(data_root: Path, count: int, seed: int = 0):
    """Yields `count` pixelated 96×96 training crops (percent 20–60), as the TFLite calibrator wants them."""
    from srmodel.data import find_image_files
    from srmodel.degrade import pixelate

    folders = [data_root / folder for folder in CALIBRATION_FOLDERS if (data_root / folder).is_dir()]
    paths = sorted(path for folder in folders for path in find_image_files(folder))
    if not paths:
        sys.exit(f"error: no calibration images under {data_root} in {', '.join(CALIBRATION_FOLDERS)}")
    rng = np.random.default_rng(seed)
    too_small: set[int] = set()  # Without this, folders of only small images would loop forever.
    done = 0
    while done < count:
        index = int(rng.integers(len(paths)))
        rgb = read_rgb(paths[index]).astype(np.float32) / 255.0
        height, width = rgb.shape[:2]
        if min(height, width) < CALIBRATION_CROP:
            too_small.add(index)
            if len(too_small) == len(paths):
                sys.exit(f"error: every calibration image under {data_root} is smaller than "
                         f"{CALIBRATION_CROP}×{CALIBRATION_CROP} pixels")
            continue
        top, left = rng.integers(height - CALIBRATION_CROP + 1), rng.integers(width - CALIBRATION_CROP + 1)
        crop = rgb[top:top + CALIBRATION_CROP, left:left + CALIBRATION_CROP]
        yield [pixelate(crop, float(rng.uniform(20, 60)))[None]]
        done += 1


def convert(model, calibration=None) -> bytes:
    """The model as a TFLite flatbuffer with a free H×W input; int8 when `calibration` is given."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    function = tf.function(lambda x: model(x, training=False),
                           input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])
    frozen = convert_variables_to_constants_v2(function.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    if calibration is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = calibration
    return converter.convert()


class TFLiteRunner:
    """float32 H×W×3 -> restored image through a TFLite interpreter, resized to each input."""

    def __init__(self, flatbuffer: bytes) -> None:
        import tensorflow as tf

        self._interpreter = tf.lite.Interpreter(model_content=flatbuffer, num_threads=os.cpu_count())
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._shape: tuple[int, ...] | None = None

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if image.shape != self._shape:
            self._interpreter.resize_tensor_input(self._input, [1, *image.shape])
            self._interpreter.allocate_tensors()
            self._shape = image.shape
        self._interpreter.set_tensor(self._input, np.asarray(image, np.float32)[None])
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output)[0]


def megapixels_per_second(run, size: int, repeats: int) -> float:
    """Best of `repeats` runs after a warm-up (allocation, XNNPACK packing), on bench/speed.py's input."""
    image = make_input(size)[0]
    return size * size / 1e6 / min(time_workload(lambda: run(image), repeats, budget_s=None))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", metavar="NAME=FOLDER", help="model folder (default: the bundled default)")
    parser.add_argument("--sets", nargs="+", choices=["set5", "set14", "b100", "urban100"], default=["b100", "set14"])
    parser.add_argument("--limit", type=int, default=20, help="first N images of each set (default 20)")
    parser.add_argument("--percent", type=float, default=40.0, help="pixelation percent (default 40)")
    parser.add_argument("--calibration", type=int, default=100, help="calibration crops (default 100)")
    parser.add_argument("--size", type=int, default=512, help="side of the timed image (default 512)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per model; the best counts (default 5)")
    common.add_data_root_argument(parser)
    args = parser.parse_args(argv)
    for name in ("limit", "calibration", "size", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1. Received: {getattr(args, name)}")
    if not 0 < args.percent <= 100:
        parser.error(f"--percent must be in (0, 100]. Received: {args.percent:g}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data_root = common.check_data_root(args.data_root)
    name, folder = common.parse_model_specs([args.model] if args.model else None)[-1]
    from srmodel.folder import load_model_folder

    model = load_model_folder(folder)[0]
    keras_run = common.whole_image_runner(model)  # The stored model: float32.
    float_run = TFLiteRunner(convert(model))
    int8_run = TFLiteRunner(convert(model, lambda: calibration_samples(data_root, args.calibration)))
    methods = {
        "bicubic": baseline_methods()["bicubic"],
        "keras": lambda case: keras_run(case.pixelated),
        "int8": lambda case: int8_run(case.pixelated),
    }

    print(f"# int8 probe: {name} ({folder}), {args.percent:g} %, {common.cpu_description()}\n")
    print("| set | images | bicubic | Keras float32 | TFLite int8 | int8 − float32 |")
    print("|---|---:|---:|---:|---:|---:|")
    for key in args.sets:
        images = iter_images(key, data_root, args.limit, lfw80_resize="pil-bilinear")  # (--sets has no LFW)
        tallies = tally_images(images, [args.percent], methods)[args.percent]
        count = len(tallies["bicubic"].psnr)
        if not count:
            print(f"| {key} | 0 | | | | |")
            continue
        bicubic, keras_psnr, int8_psnr = (float(np.mean(tallies[method].psnr)) for method in methods)
        print(f"| {key} | {count} | {bicubic:.3f} | {keras_psnr:.3f} | {int8_psnr:.3f} | {int8_psnr - keras_psnr:+.3f} |")

    print(f"\n| TFLite (XNNPACK, {os.cpu_count()} threads, untiled) | MP/s at {args.size}² |")
    print("|---|---:|")
    for label, run in (("float32", float_run), ("int8", int8_run)):
        print(f"| {label} | {megapixels_per_second(run, args.size, args.repeats):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(common.run_main(main))
