"""Quality benchmark: mean per-image PSNR / SSIM of srmodel models, baselines and OpenCV peers.

    python bench/quality.py                        # everything (slow on CPU: see bench/README.md)
    python bench/quality.py --limit 5 --sets set5 set14 --percents 40
    python bench/quality.py --model mine=runs/exp1 --samples docs/comparison.png
    python bench/quality.py --sets set14 b100 --percents 40 --self-ensemble --no-peers
    python bench/quality.py --images mine=~/photos --percents 40     # your own images only

Each HR image (float32 RGB in [0, 1], full size, no crop) is pixelated with `srmodel.pixelate`
(INTER_AREA down to `percent` %, INTER_AREA back). Methods restore it to the HR size:
pixelated input as-is, bicubic from the small image, each model folder (through the Enhancer),
and the OpenCV dnn_superres peers (×3 from the small image, then INTER_AREA to the HR size).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import common
import cv2
import numpy as np

SETS = {
    "lfw80": "LFW holdout 80×80 (bilinear)",
    "lfw250": "LFW holdout 250×250",
    "set5": "Set5",
    "set14": "Set14",
    "b100": "B100",
    "urban100": "Urban100 (first 40)",
}
BENCHMARK_FOLDERS = {"set5": "Set5", "set14": "Set14", "b100": "B100", "urban100": "Urban100"}
URBAN100_COUNT = 40
LFW_HOLDOUT = common.REPO_ROOT / "bench" / "lfw_holdout.txt"
DEFAULT_PERCENTS = (25.0, 40.0, 60.0)
LFW_SMALL = 80
LFW80_RESIZES = ("cv2-linear", "pil-bilinear")
DELTA_MODEL = "default"
ENSEMBLE_SUFFIX = " ×8"  # the self-ensemble's column: the Enhancer's mean over 8 rotations and mirror images


@dataclass
class Case:
    """One HR image at one pixelation percent, with the inputs every method starts from."""

    hr: np.ndarray
    percent: float
    pixelated: np.ndarray
    small: np.ndarray


@dataclass
class Tally:
    """Running per-image PSNR / SSIM values of one method on one (set, percent)."""

    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    seconds: float = 0.0  # Time spent in the method itself (not in the metrics).

    def add(self, reference: np.ndarray, image: np.ndarray) -> None:
        from srmodel.metrics import image_psnr, image_ssim

        self.psnr.append(image_psnr(reference, image))
        self.ssim.append(image_ssim(reference, image))

    def summary(self) -> dict:
        return {"psnr": float(np.mean(self.psnr)), "ssim": float(np.mean(self.ssim)), "images": len(self.psnr)}


Method = Callable[[Case], np.ndarray]


# ---------------------------------------------------------------------------------------- data


def read_rgb(path: Path) -> np.ndarray:
    """uint8 H×W×3 RGB; gray files (Set14 bridge) become three equal channels."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"could not read image: {path}")
    return np.ascontiguousarray(bgr[..., ::-1])


def lfw_paths(data_root: Path) -> list[Path]:
    """The LFW holdout images (never used to train the bundled models) found under `data_root`.

    Only those present: a data folder without LFW then skips the set with a note, as a missing benchmark set
    is skipped, and the table's n says how many of the 345 were there.
    """
    lines = LFW_HOLDOUT.read_text(encoding="utf-8").splitlines()
    names = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [path for name in names if (path := data_root / "faces" / "lfw" / name).is_file()]


def set_paths(key: str, data_root: Path) -> list[Path]:
    """Image files of one benchmark set, sorted by name."""
    if key.startswith("lfw"):
        return lfw_paths(data_root)
    paths = sorted((data_root / "benchmarks" / BENCHMARK_FOLDERS[key]).glob("*.png"))
    return paths[:URBAN100_COUNT] if key == "urban100" else paths


def folder_paths(folder: Path) -> list[Path]:
    """Image files under a user's folder (`--images`), recursively, sorted: the formats the CLI reads."""
    from srmodel.images import FORMATS

    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in FORMATS and p.is_file())


def to_rgb_float(array: np.ndarray) -> np.ndarray:
    """A `read_image` array as float32 RGB in [0, 1]: gray repeated to three channels, alpha left out."""
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[2] in (2, 4):
        array = array[..., :-1]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return array.astype(np.float32) / (65535.0 if array.dtype == np.uint16 else 255.0)


def resize_face(rgb: np.ndarray, how: str) -> np.ndarray:
    """250×250 -> 80×80: cv2 INTER_LINEAR (no antialiasing) or Pillow BILINEAR (antialiased)."""
    if how == "cv2-linear":
        return cv2.resize(rgb, (LFW_SMALL, LFW_SMALL), interpolation=cv2.INTER_LINEAR)
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize((LFW_SMALL, LFW_SMALL), Image.Resampling.BILINEAR))


def load_hr(key: str, path: Path, lfw80_resize: str = "pil-bilinear") -> np.ndarray:
    """float32 RGB in [0, 1]; for lfw80 the 250×250 face is first resized to 80×80."""
    rgb = read_rgb(path)
    if key == "lfw80":
        rgb = resize_face(rgb, lfw80_resize)
    return rgb.astype(np.float32) / 255.0


def make_case(hr: np.ndarray, percent: float) -> Case:
    from srmodel.degrade import downscale, pixelate

    return Case(hr=hr, percent=percent, pixelated=pixelate(hr, percent), small=downscale(hr, percent))


# ------------------------------------------------------------------------------------- methods


def baseline_methods() -> dict[str, Method]:
    from srmodel.degrade import bicubic_from_small

    return {
        "pixelated": lambda case: case.pixelated,
        "bicubic": lambda case: bicubic_from_small(case.hr, case.percent),
    }


def model_methods(
    models: list[tuple[str, Path]], notes: list[str], precision: str | None = None, self_ensemble: bool = False
) -> dict[str, Method]:
    """Each model through the Enhancer; with `self_ensemble`, also its 8-view mean as "NAME ×8"."""
    methods: dict[str, Method] = {}
    for name, folder in common.available_models(models, notes):
        runner = common.load_model_runner(folder, "enhancer", precision)
        methods[name] = lambda case, run=runner: run(case.pixelated)
        if self_ensemble:
            methods[f"{name}{ENSEMBLE_SUFFIX}"] = lambda case, run=runner: run(case.pixelated, self_ensemble=True)
    return methods


def peer_methods(data_root: Path, enabled: bool, notes: list[str]) -> dict[str, Method]:
    if not enabled:
        notes.append("peers skipped (--no-peers)")
        return {}
    if not common.peers_available():
        notes.append(f"peers skipped: cv2.dnn_superres is unavailable ({common.PEERS_REQUIREMENTS})")
        return {}
    methods: dict[str, Method] = {}
    for name in common.PEERS:
        try:
            upscale = common.load_peer(name, data_root)
        except (OSError, cv2.error) as exc:
            notes.append(f"peer '{name}' skipped: {exc}")
            continue
        methods[name] = lambda case, up=upscale: up(case.small, case.hr.shape[:2])
    return methods


# ----------------------------------------------------------------------------------- evaluation


def iter_images(key: str, data_root: Path, limit: int | None, lfw80_resize: str) -> Iterator[np.ndarray]:
    for path in set_paths(key, data_root)[:limit]:
        yield load_hr(key, path, lfw80_resize)


def iter_folder_images(paths: list[Path], notes: list[str]) -> Iterator[np.ndarray]:
    """A user's images (any mode `read_image` takes); a file it cannot read is named in a note and left out."""
    from srmodel.errors import ImageError
    from srmodel.images import read_image

    for path in paths:
        try:
            yield to_rgb_float(read_image(path))
        except ImageError as exc:
            notes.append(f"left out: {exc}")


def tally_images(
    images: Iterable[np.ndarray], percents: list[float], methods: dict[str, Method]
) -> dict[float, dict[str, Tally]]:
    """Every method on every HR image at every percent (each image is read once); tallies by percent, method."""
    tallies = {p: {name: Tally() for name in methods} for p in percents}
    for hr in images:
        for percent in percents:
            case = make_case(hr, percent)
            for name, method in methods.items():
                start = time.perf_counter()
                output = method(case)
                tallies[percent][name].seconds += time.perf_counter() - start
                tallies[percent][name].add(hr, output)
    return tallies


def evaluate_set(
    key: str, percents: list[float], methods: dict[str, Method], data_root: Path, limit: int | None,
    lfw80_resize: str = "pil-bilinear",
) -> list[dict]:
    """One result row per percent: mean PSNR / SSIM of every method over the set's images."""
    images = iter_images(key, data_root, limit, lfw80_resize)
    return summarise(key, set_label(key, limit, lfw80_resize), tally_images(images, percents, methods), percents)


def evaluate_folder(
    name: str, folder: Path, percents: list[float], methods: dict[str, Method], limit: int | None, notes: list[str]
) -> list[dict]:
    """Like `evaluate_set`, for a folder of the user's own images (`--images NAME=FOLDER`)."""
    paths = folder_paths(folder)[:limit]
    tallies = tally_images(iter_folder_images(paths, notes), percents, methods)
    if not next(iter(tallies[percents[0]].values())).psnr:
        notes.append(f"--images {name}: none of the {len(paths)} files could be read")
        return []
    return summarise(name, f"{name} ({folder})", tallies, percents)


def summarise(key: str, label: str, tallies: dict[float, dict[str, Tally]], percents: list[float]) -> list[dict]:
    rows = []
    for percent in percents:
        summaries = {name: tally.summary() for name, tally in tallies[percent].items()}
        images = next(iter(summaries.values()))["images"] if summaries else 0
        rows.append({"set": key, "label": label, "percent": percent, "images": images,
                     "methods": {name: {k: s[k] for k in ("psnr", "ssim")} for name, s in summaries.items()},
                     "method_seconds": {name: round(t.seconds, 3) for name, t in tallies[percent].items()}})
    return rows


def set_label(key: str, limit: int | None, lfw80_resize: str = "pil-bilinear") -> str:
    label = SETS[key]
    if key == "lfw80" and lfw80_resize != "pil-bilinear":
        label = label.replace("(bilinear)", f"({lfw80_resize})")
    return f"{label}, first {limit}" if limit else label


# --------------------------------------------------------------------------------------- output


def format_table(rows: list[dict], method_names: list[str], delta_models: list[str]) -> str:
    """Markdown: one row per (set, percent), one "PSNR / SSIM" column per method, then each delta model − bicubic."""
    header = ["set", "%", "n"] + method_names + [f"{name} − bicubic" for name in delta_models]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"]
    for row in rows:
        cells = [row["label"], f"{row['percent']:g}", str(row["images"])]
        for name in method_names:
            score = row["methods"][name]
            cells.append(f"{score['psnr']:.2f} / {score['ssim']:.4f}")
        for name in delta_models:
            model, bicubic = row["methods"][name], row["methods"]["bicubic"]
            # Three decimals: the targets are gaps such as +1.5 dB, which +1.496 must not round up to.
            cells.append(f"{model['psnr'] - bicubic['psnr']:+.3f} dB / {model['ssim'] - bicubic['ssim']:+.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


# -------------------------------------------------------------------------------------- samples

SAMPLE_TILES = (160, 144, 128)  # Tile sides tried (with all rows, then one fewer) to fit SAMPLE_MAX_BYTES.
SAMPLE_SMALL_TILES = (112, 96)  # The last resort.
SAMPLE_MAX_BYTES = 500 * 1024
SAMPLE_PICKS = (  # (set, file name or None for the first, crop centre as fractions of H, W)
    ("lfw250", None, (0.5, 0.5)),
    ("set14", "comic.png", (0.35, 0.5)),
    ("urban100", "img_004.png", (0.5, 0.5)),
    ("b100", None, (0.5, 0.5)),
)
Sample = tuple[list[np.ndarray], tuple[float, float]]


def sample_images(data_root: Path, methods: dict[str, Method], percent: float) -> list[Sample]:
    """Per pick: full-size outputs of pixelated | bicubic | models... | original, and the crop centre.

    Methods run on the whole image (models see the full context); only the picture is cropped.
    """
    samples = []
    for key, filename, centre in SAMPLE_PICKS:
        paths = set_paths(key, data_root)
        chosen = [p for p in paths if p.name == filename] or paths[:1]
        if not chosen:
            continue
        hr = load_hr(key, chosen[0])
        case = make_case(hr, percent)
        outputs = [method(case) for name, method in methods.items() if name not in common.PEERS]
        samples.append((outputs + [hr], centre))
    return samples


def crop(image: np.ndarray, centre: tuple[float, float], size: int) -> np.ndarray:
    """A size×size crop around `centre` (fractions of H, W); small images are enlarged (nearest)."""
    height, width = image.shape[:2]
    side = min(size, height, width)
    top = int(np.clip(centre[0] * height - side / 2, 0, height - side))
    left = int(np.clip(centre[1] * width - side / 2, 0, width - side))
    tile = image[top : top + side, left : left + side]
    return cv2.resize(tile, (size, size), interpolation=cv2.INTER_NEAREST) if side != size else tile


def render_samples(samples: list[Sample], titles: list[str], tile: int) -> np.ndarray:
    """A labelled uint8 RGB grid: one row per sample, one column per method."""
    gap, band = 4, 24
    width = len(titles) * (tile + gap) + gap
    canvas = np.full((band + len(samples) * (tile + gap) + gap, width, 3), 255, np.uint8)
    for col, title in enumerate(titles):
        x = gap + col * (tile + gap)
        cv2.putText(canvas, title, (x + 3, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for row, (images, centre) in enumerate(samples):
        y = band + row * (tile + gap)
        for col, image in enumerate(images):
            x = gap + col * (tile + gap)
            canvas[y : y + tile, x : x + tile] = np.rint(np.clip(crop(image, centre, tile), 0, 1) * 255)
    return canvas


def save_samples(path: Path, samples: list[Sample], titles: list[str]) -> None:
    """Writes the grid as PNG, with smaller tiles or one row fewer until it fits SAMPLE_MAX_BYTES."""
    count = len(samples)
    layouts = [(rows, tile) for rows in (count, count - 1) for tile in SAMPLE_TILES if rows > 0]
    layouts += [(rows, tile) for rows in range(count, 0, -1) for tile in SAMPLE_SMALL_TILES]
    for rows, tile in layouts:
        ok, png = cv2.imencode(".png", render_samples(samples[:rows], titles, tile)[..., ::-1],
                               [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if ok and len(png) <= SAMPLE_MAX_BYTES:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png.tobytes())
            return
    raise OSError(f"could not fit the sample picture in {SAMPLE_MAX_BYTES} bytes")


# ----------------------------------------------------------------------------------------- main


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", choices=common.PRECISION_CHOICES, default=None,
                        help="model compute precision, as the product runs it (default: $SRMODEL_PRECISION or auto: "
                             "bfloat16 on CPUs that compute it natively, else float32)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_data_root_argument(parser)
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=None,
                        help="sets to evaluate (default: all of them, or none when --images is given)")
    parser.add_argument("--images", action="append", metavar="NAME=FOLDER", default=[],
                        help="also score your own images: every PNG, JPEG, WebP, BMP or TIFF under FOLDER, as a set "
                             "named NAME (repeatable; needs no shared data)")
    parser.add_argument("--percents", nargs="+", type=float, default=list(DEFAULT_PERCENTS),
                        help="pixelation percents (default: 25 40 60)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images of each set")
    parser.add_argument("--model", action="append", metavar="NAME=FOLDER",
                        help="model folder to evaluate (repeatable; default: the bundled tutorial and default)")
    parser.add_argument("--lfw80-resize", choices=LFW80_RESIZES, default="pil-bilinear",
                        help="how lfw80 shrinks the faces: Pillow BILINEAR (default, antialiased; matches the "
                             "issue's LFW80 baselines) or cv2 INTER_LINEAR (aliased, about 2 dB lower for every method)")
    parser.add_argument("--no-models", action="store_true", help="baselines and peers only")
    parser.add_argument("--no-peers", action="store_true", help="leave out the OpenCV dnn_superres peers")
    add_precision_argument(parser)
    parser.add_argument("--self-ensemble", action="store_true",
                        help=f"also score each model's self-ensemble (mean of 8 rotated and mirrored passes, "
                             f"8× slower) as 'NAME{ENSEMBLE_SUFFIX}'")
    parser.add_argument("--json", type=Path, default=common.RESULTS_DIR / "quality.json", help="JSON output path")
    parser.add_argument("--samples", type=Path, default=None,
                        help="also write a picture of crops (e.g. docs/comparison.png)")
    parser.add_argument("--samples-percent", type=float, default=40.0, help="pixelation of the sample picture")
    args = parser.parse_args(argv)
    common.check_json_path(parser, args.json)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be >= 1")
    args.percents = common.checked_percents(parser, args.percents)
    if not 0 < args.samples_percent <= 100:
        parser.error(f"--samples-percent must be in (0, 100]. Received: {args.samples_percent:g}")
    args.folders = [parse_folder_spec(parser, spec) for spec in args.images]
    names = [name for name, _ in args.folders]
    if len(set(names)) < len(names):
        parser.error(f"--images names must differ. Received: {', '.join(names)}")
    if args.sets is None:
        args.sets = [] if args.folders else list(SETS)
    return args


def parse_folder_spec(parser: argparse.ArgumentParser, spec: str) -> tuple[str, Path]:
    """`--images NAME=FOLDER`, checked before any model loads."""
    name, sep, folder = spec.partition("=")
    if not sep or not name or not folder:
        parser.error(f"--images expects NAME=FOLDER. Received: {spec!r}")
    if name in SETS:
        parser.error(f"--images {spec}: {name!r} is the name of a built-in set; choose another name")
    path = Path(folder).expanduser()  # `NAME=~/photos` reaches us unexpanded from most shells.
    if not path.is_dir():
        parser.error(f"--images {name}: not a folder: {path}")
    if not folder_paths(path):
        parser.error(f"--images {name}: no PNG, JPEG, WebP, BMP or TIFF files under {path}")
    return name, path


def build_methods(args: argparse.Namespace, data_root: Path, notes: list[str]) -> dict[str, Method]:
    """pixelated, bicubic, the model folders that exist, then the peers (when available)."""
    models = [] if args.no_models else common.parse_model_specs(args.model)
    methods = {**baseline_methods(), **model_methods(models, notes, args.precision, args.self_ensemble)}
    methods.update(peer_methods(data_root, not args.no_peers, notes))
    return methods


def models_in(methods: dict[str, Method]) -> bool:
    return any(name not in ("pixelated", "bicubic") and name not in common.PEERS for name in methods)


def run_sets(
    args: argparse.Namespace, methods: dict[str, Method], data_root: Path, notes: list[str]
) -> tuple[list[dict], dict[str, float]]:
    """Result rows of every requested set, and the seconds each set took."""
    rows: list[dict] = []
    set_seconds: dict[str, float] = {}
    for key in args.sets:
        if not set_paths(key, data_root):
            notes.append(f"set '{key}' skipped: no images under {data_root}")
            continue
        start = time.perf_counter()
        rows.extend(evaluate_set(key, args.percents, methods, data_root, args.limit, args.lfw80_resize))
        set_seconds[key] = round(time.perf_counter() - start, 1)
        print(f"[{key}: {set_seconds[key]} s]", file=sys.stderr, flush=True)
    for name, folder in args.folders:
        start = time.perf_counter()
        rows.extend(evaluate_folder(name, folder, args.percents, methods, args.limit, notes))
        set_seconds[name] = round(time.perf_counter() - start, 1)
        print(f"[{name}: {set_seconds[name]} s]", file=sys.stderr, flush=True)
    return rows, set_seconds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Your own folders need no shared data; without it the peers (whose models live there) are left out with a note.
    needs_data = bool(args.sets) or args.samples is not None
    data_root = common.check_data_root(args.data_root) if needs_data else args.data_root.resolve()
    notes: list[str] = []
    start = time.perf_counter()
    methods = build_methods(args, data_root, notes)
    rows, set_seconds = run_sets(args, methods, data_root, notes)
    deltas = [name for name in (DELTA_MODEL, DELTA_MODEL + ENSEMBLE_SUFFIX) if name in methods]
    print(format_table(rows, list(methods), deltas))
    if notes:
        print("\n" + "\n".join(f"Note: {note}" for note in notes))
    elapsed = time.perf_counter() - start
    write_json(args.json, {
        "protocol": "mean per-image PSNR (dB) / SSIM, RGB in [0, 1], full-size images, srmodel.pixelate",
        "lfw80_resize": args.lfw80_resize, "methods": list(methods), "notes": notes, "limit": args.limit,
        "elapsed_s": round(elapsed, 1), "set_seconds": set_seconds, "python": platform.python_version(),
        "opencv": cv2.__version__, "precision": common.resolved_precision(args.precision) if models_in(methods) else None,
        "results": rows,
    })
    print(f"\nWrote {args.json} ({elapsed:.0f} s)")
    if args.samples:
        titles = [name for name in methods if name not in common.PEERS] + ["original"]
        titles[0] = f"pixelated {args.samples_percent:g}%"
        save_samples(args.samples, sample_images(data_root, methods, args.samples_percent), titles)
        print(f"Wrote {args.samples} ({args.samples.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(common.run_main(main))
