"""Speed benchmark: megapixels per second and peak memory of models, peers and bicubic.

    python bench/speed.py                                   # bundled models, 256² 512² 2048²
    python bench/speed.py --model mine=runs/exp1 --sizes 256 1024 --repeats 3

Models are timed in float32 and in the precision `auto` picks (bfloat16 on CPUs that compute it
natively, see srmodel/precision.py); `--precision` chooses others.

Every (method, mode, precision, size) runs in its own child process, so the peak RSS of one never leaks into
another. A child builds its input (a random image pixelated at 40 %), runs the method once to warm
up, then times up to --repeats runs (fewer when one run is slow: see --budget-s) and reports the
median. Throughput counts output megapixels (size² / 1e6) per second, batch 1.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import common
import numpy as np

DEFAULT_SIZES = (256, 512, 2048)
PERCENT = 40.0


# ------------------------------------------------------------------------------------ children


def make_input(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(pixelated, small) float32 RGB images for a size×size random picture.

    Same operations as `srmodel.pixelate` / `downscale`, done with cv2 directly so that the bicubic
    and peer children never import srmodel (whose package import loads Keras and TensorFlow).
    """
    import cv2

    rng = np.random.default_rng(size)
    hr = rng.random((size, size, 3), dtype=np.float32)
    side = max(1, int(size * PERCENT / 100))
    small = cv2.resize(hr, (side, side), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_AREA), small


def make_workload(job: dict, data_root: Path) -> Callable[[], object]:
    """A no-argument callable that restores one size×size image with the job's method."""
    import cv2

    size = job["size"]
    pixelated, small = make_input(size)
    if job["kind"] == "bicubic":
        return lambda: cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    if job["kind"] == "peer":
        upscale = common.load_peer(job["name"], data_root)
        return lambda: upscale(small, (size, size))
    if job["mode"] == "ensemble":  # the tiled Enhancer's 8-view self-ensemble
        runner = common.load_model_runner(Path(job["folder"]), "enhancer", job["precision"])
        return lambda: runner(pixelated, self_ensemble=True)
    runner = common.load_model_runner(Path(job["folder"]), job["mode"], job["precision"])
    return lambda: runner(pixelated)


def time_workload(work: Callable[[], object], repeats: int, budget_s: float | None) -> list[float]:
    """Warm-up run, then up to `repeats` timed runs (at least one) within about `budget_s` (None: no limit)."""
    start = time.perf_counter()
    work()
    warm = time.perf_counter() - start
    count = repeats if budget_s is None else max(1, min(repeats, int(budget_s / max(warm, 1e-6))))
    times = []
    for _ in range(count):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return times


def gpu_report() -> dict:
    """GPU names and peak GPU memory (MB), when TensorFlow is loaded and sees a GPU."""
    if "tensorflow" not in sys.modules:
        return {}
    import tensorflow as tf

    gpus = common.gpu_names()
    if not gpus:
        return {"gpus": []}
    peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
    return {"gpus": gpus, "gpu_peak_mb": round(peak / 2**20, 1)}


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (ru_maxrss is KB on Linux, bytes on macOS)."""
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(value / (2**20 if sys.platform == "darwin" else 2**10), 1)


def run_child(job: dict, data_root: Path, repeats: int, budget_s: float) -> dict:
    if job["kind"] == "model":
        job = {**job, "precision": common.resolved_precision(job["precision"])}
        if job["precision"] in job.pop("measured_elsewhere", ()):
            return {**job, "skipped": f"auto means {job['precision']} here, which is timed already"}
    work = make_workload(job, data_root)
    load_rss = peak_rss_mb()
    times = time_workload(work, repeats, budget_s)
    median = statistics.median(times)
    megapixels = job["size"] ** 2 / 1e6
    return {**job, "runs": len(times), "median_s": round(median, 5), "mp_per_s": round(megapixels / median, 3),
            "load_rss_mb": load_rss, "peak_rss_mb": peak_rss_mb(), **gpu_report()}


# -------------------------------------------------------------------------------------- parent


def plan_jobs(models: list[tuple[str, Path]], peers: list[str], sizes: list[int], whole_max: int,
              precisions: list[str] = ("float32", "auto"), self_ensemble: bool = False) -> list[dict]:
    """Every (method, mode, precision, size) to measure: tiled Enhancer at all sizes, whole pass up to whole_max,
    and with `self_ensemble` the Enhancer's 8-view self-ensemble at all sizes.

    "auto" is resolved in the child (it needs TensorFlow); where it means a precision that is also
    asked for explicitly, the child skips it instead of timing the same thing twice.
    """
    jobs = [{"method": "bicubic", "kind": "bicubic", "mode": "-", "size": s} for s in sizes]
    jobs += [{"method": p, "kind": "peer", "name": p, "mode": "-", "size": s} for p in peers for s in sizes]
    explicit = [p for p in dict.fromkeys(precisions) if p != "auto"]
    for name, folder in models:
        for mode in ("enhancer", "whole", "ensemble") if self_ensemble else ("enhancer", "whole"):
            for precision in dict.fromkeys(precisions):
                extra = {"measured_elsewhere": explicit} if precision == "auto" else {}
                jobs += [{"method": name, "kind": "model", "folder": str(folder), "mode": mode,
                          "precision": precision, "size": s, **extra}
                         for s in sizes if mode != "whole" or s <= whole_max]
    return jobs


def spawn(job: dict, args: argparse.Namespace) -> dict:
    """Runs one job in a fresh interpreter and returns its JSON result (or the error)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(job),
               "--data-root", str(args.data_root), "--repeats", str(args.repeats), "--budget-s", str(args.budget_s)]
    proc = subprocess.run(command, check=False, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {**job, "error": f"exit {proc.returncode}: {tail[:300]}"}
    return json.loads(lines[-1])


def label(result: dict) -> str:
    if result["kind"] != "model":
        return result["method"]
    mode = {"enhancer": "tiled Enhancer", "whole": "whole image", "ensemble": "tiled Enhancer, self-ensemble ×8"}[
        result["mode"]]
    return f"{result['method']} ({mode}, {result['precision']})"


def format_cell(result: dict | None) -> str:
    if result is None:
        return "–"
    if "error" in result:
        return "error"
    cell = f"{result['mp_per_s']:.2f} MP/s, {result['peak_rss_mb']:.0f} MB"
    if result.get("gpu_peak_mb") is not None:
        cell += f", GPU {result['gpu_peak_mb']:.0f} MB"
    return cell


def format_table(results: list[dict], sizes: list[int]) -> str:
    """Markdown: one row per method (and mode), one column per input size."""
    rows: dict[str, dict[int, dict]] = {}
    for result in results:
        if "skipped" not in result:
            rows.setdefault(label(result), {})[result["size"]] = result
    header = ["method"] + [f"{s}×{s}" for s in sizes]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(sizes)]
    for name, by_size in rows.items():
        lines.append("| " + " | ".join([name] + [format_cell(by_size.get(s)) for s in sizes]) + " |")
    return "\n".join(lines)


def select_peers(enabled: bool, notes: list[str]) -> list[str]:
    if not enabled:
        return []
    if not common.peers_available():
        notes.append(f"peers skipped: cv2.dnn_superres is unavailable ({common.PEERS_REQUIREMENTS})")
        return []
    return list(common.PEERS)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_data_root_argument(parser)
    parser.add_argument("--sizes", nargs="+", type=int, default=list(DEFAULT_SIZES), help="square input sides")
    parser.add_argument("--model", action="append", metavar="NAME=FOLDER",
                        help="model folder to time (repeatable; default: the bundled tutorial and default)")
    parser.add_argument("--no-models", action="store_true", help="bicubic and peers only")
    parser.add_argument("--no-peers", action="store_true", help="leave out the OpenCV dnn_superres peers")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per cell (median is reported)")
    parser.add_argument("--budget-s", type=float, default=20.0,
                        help="fewer timed runs when the warm-up run says they would take longer than this")
    parser.add_argument("--whole-max", type=int, default=512,
                        help="largest size also timed as one whole-image model call (bigger: tiled only)")
    parser.add_argument("--precision", action="append", choices=common.PRECISION_CHOICES,
                        help="model compute precision (repeatable; default: float32 and auto, i.e. bfloat16 too "
                             "where the CPU computes it natively)")
    parser.add_argument("--self-ensemble", action="store_true",
                        help="also time each model's 8-view self-ensemble (Enhancer.enhance(..., self_ensemble=True))")
    parser.add_argument("--json", type=Path, default=common.RESULTS_DIR / "speed.json", help="JSON output path")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    common.check_json_path(parser, args.json)
    if min(args.sizes) < 1 or args.repeats < 1:
        parser.error("--sizes and --repeats must be >= 1")
    if not args.budget_s > 0:
        parser.error(f"--budget-s must be > 0 seconds. Received: {args.budget_s:g}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_child(json.loads(args.child), args.data_root.resolve(), args.repeats, args.budget_s)))
        return 0
    notes: list[str] = []
    peers = select_peers(not args.no_peers, notes)
    if peers:
        args.data_root = common.check_data_root(args.data_root)
    models = [] if args.no_models else common.available_models(common.parse_model_specs(args.model), notes)
    start = time.perf_counter()
    results = []
    precisions = args.precision or ["float32", "auto"]
    for job in plan_jobs(models, peers, args.sizes, args.whole_max, precisions, args.self_ensemble):
        results.append(spawn(job, args))
        result = results[-1]
        cell = result.get("skipped") or format_cell(result)
        print(f"[{label(result)} {job['size']}²: {cell}]", file=sys.stderr, flush=True)
    gpus = next((r["gpus"] for r in results if "gpus" in r), [])
    device = {"cpu": common.cpu_description(), "gpus": gpus}
    print(f"Device: {device['cpu']}; GPU: {', '.join(gpus) if gpus else 'none'}\n")
    print(format_table(results, args.sizes))
    errors = [f"{label(r)} {r['size']}²: {r['error']}" for r in results if "error" in r]
    if notes or errors:
        print("\n" + "\n".join(f"Note: {note}" for note in notes + errors))
    elapsed = time.perf_counter() - start
    payload = {"device": device, "percent": PERCENT, "repeats": args.repeats, "budget_s": args.budget_s,
               "notes": notes, "elapsed_s": round(elapsed, 1), "results": results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"\nWrote {args.json} ({elapsed:.0f} s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(common.run_main(main))
