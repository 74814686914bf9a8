"""`python -m srmodel enhance`: restore image files and whole folders with a trained model."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from srmodel.images import DEFAULT_MAX_PIXELS, FORMATS
from srmodel.precision import PRECISIONS

PIXELATED_TAG = ".pixelated"
EXIT_OK, EXIT_SKIPPED, EXIT_USAGE = 0, 1, 2

EPILOG = f"""\
Folders are searched recursively for {", ".join(sorted(FORMATS))}
files (any case). Results keep each file's path relative to the folder it was
found in, and its format (16-bit PNG/TIFF stay 16-bit); a file named directly
is written to DIR under its own name (as NAME.png when its format, e.g. GIF,
cannot be written). No result may replace an input file. EXIF orientation is
applied.

With --pixelate P, each image is first pixelated (area-downscaled to P % of
each side and scaled back, as in training) and that version is enhanced; it is
also saved beside the result as NAME{PIXELATED_TAG}.EXT for comparison.

An unreadable file is reported as "skipped: PATH: REASON" and the others go on.
Exit status: 0 all enhanced, 1 some skipped, 2 usage error (no input images
found, --out not a writable folder, model could not be loaded).
"""

@dataclass(frozen=True)
class Job:
    """One image to process: where it is read from and where its result goes."""

    source: Path
    target: Path


def _positive_tile(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 8. Received: {text!r}") from None
    if value < 8:
        raise argparse.ArgumentTypeError(f"expected an integer >= 8. Received: {value}")
    return value


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 100]. Received: {text!r}") from None
    if not 0.0 < value <= 100.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 100]. Received: {value:g}")
    return value


def _megapixels(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of megapixels > 0. Received: {text!r}") from None
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of megapixels > 0. Received: {value:g}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers the `enhance` subcommand on the `python -m srmodel` parser."""
    parser = subparsers.add_parser(
        "enhance",
        help="enhance image files and folders",
        description="Restore image files and whole folders with a trained model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write results to")
    parser.add_argument(
        "--model",
        default=None,
        metavar="SOURCE",
        help="model folder or Hugging Face repo 'user/name[@revision]' (default: the bundled model)",
    )
    parser.add_argument(
        "--pixelate",
        type=_percent,
        default=None,
        metavar="PERCENT",
        help=f"pixelate each image first (to PERCENT %% of each side) and save that too, as NAME{PIXELATED_TAG}.EXT",
    )
    parser.add_argument(
        "--tile-size", type=_positive_tile, default=None, metavar="N",
        help="tile side in pixels; smaller uses less memory but more time, since every tile also computes a "
        "margin of context around it (default: chosen from the model, 512 to 1024)"
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="compute precision: auto picks bfloat16 on CPUs that compute it natively (about 2x faster), "
        "else float32 (default: $SRMODEL_PRECISION, or auto)",
    )
    parser.add_argument(
        "--max-megapixels", type=_megapixels, default=DEFAULT_MAX_PIXELS / 1e6, metavar="MP",
        help="skip larger images, judged from the file header before decoding (default %(default)g; tiles keep "
        "memory flat, about 1.1 GB for 12 MP, so raise it for big panoramas)",
    )
    parser.add_argument(
        "--self-ensemble",
        action="store_true",
        help="restore the 8 rotations and mirror images of each image and average them: "
        "about 8x slower, a little more accurate (+0.05 to +0.15 dB PSNR on B100, +0.1 to +0.5 dB on faces)",
    )
    parser.set_defaults(func=run)
    return parser


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def pixelated_path(target: Path) -> Path:
    """`out/cat.png` -> `out/cat.pixelated.png`."""
    return target.with_name(f"{target.stem}{PIXELATED_TAG}{target.suffix}")


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file; None for a path that does not exist (writing it replaces nothing)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


def _target_name(source: Path) -> Path:
    """A file named directly keeps its name; one in a format we cannot write (e.g. GIF) becomes NAME.png."""
    return Path(source.name if source.suffix.lower() in FORMATS else f"{source.stem}.png")


@dataclass
class JobList:
    """What `collect_jobs` found: the jobs, the inputs it refused (with why) and the files inside `out` it left out."""

    jobs: list[Job]
    problems: list[str]
    inside_out: int = 0


def collect_jobs(inputs: list[str], out: Path, *, pixelate: bool = False) -> JobList:
    """Expands files and folders into jobs without touching any pixels.

    Files already inside `out` are left out of folders so `enhance . --out results` never eats its own
    output, and no job may write over an input file (its own or another's) or over another job's result.
    """
    candidates: list[tuple[Path, Path]] = []
    problems: list[str] = []
    protected: dict[tuple[int, int] | None, Path] = {}  # files no result may replace, by (device, inode)
    inside_out = 0
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in FORMATS and p.is_file())
            if _is_inside(path, out):  # The whole folder is in --out: its files are inputs, never results.
                protected.update((_identity(p), p) for p in found)
                kept = []
            else:  # Files in an --out inside this folder are earlier results: left out, and may be replaced.
                kept = [p for p in found if not _is_inside(p, out)]
            inside_out += len(found) - len(kept)
            candidates.extend((source, out / source.relative_to(path)) for source in kept)
        elif path.is_file():
            candidates.append((path, out / _target_name(path)))
        else:
            problems.append(f"{path}: no such file or folder")

    protected.update((_identity(source), source) for source, _ in candidates)
    protected.pop(None, None)
    written: dict[Path, Path] = {}
    seen: set[tuple] = set()
    jobs: list[Job] = []
    for source, target in candidates:
        source_id = _identity(source)
        outputs = [target, pixelated_path(target)] if pixelate else [target]
        resolved = [o.resolve() for o in outputs]
        if (source_id, resolved[0]) in seen:  # The same file named twice (a.png a.png, in in/).
            continue
        seen.add((source_id, resolved[0]))
        # By identity, not by name: --out may reach the same files by a symlink, a bind mount or another case.
        replaced = next((key for o in outputs if (key := _identity(o)) in protected), None)
        clash = any(r in written for r in resolved)
        if replaced is not None:
            whose = "it" if replaced == source_id else f"the input {protected[replaced]}"
            problems.append(f"{source}: its result would overwrite {whose}; choose another --out")
        elif clash:
            taken, owner = next((o, written[r]) for o, r in zip(outputs, resolved, strict=True) if r in written)
            problems.append(f"{source}: its output {taken} is already an output of {owner}")
        else:
            written.update((r, source) for r in resolved)
            jobs.append(Job(source, target))
    return JobList(jobs, problems, inside_out)


def prepare_out(out: Path) -> str | None:
    """Creates the output folder; returns why it cannot be used, or None when it is ready."""
    if out.exists() and not out.is_dir():
        return f"--out must be a folder, but {out} is a file"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the --out folder {out}: {exc.strerror or exc}"
    if not os.access(out, os.W_OK | os.X_OK):
        return f"cannot write to the --out folder {out}: permission denied or read-only"
    return None


def _load_enhancer(source: str | None, precision: str | None = None):
    """Imported on first use: the Hub client is not needed to check the arguments and inputs.

    A Hub model is announced before the download (which may wait on the network) and named, with its commit, after.
    """
    from srmodel.hub import load_enhancer

    from_hub = source not in (None, "bundled") and not Path(source).expanduser().is_dir()
    if from_hub:
        print(f"Fetching {source} from the Hugging Face Hub (or its local cache) ...", file=sys.stderr)
    enhancer = load_enhancer(source, precision=precision)
    info = enhancer.info
    if info.get("source") == "hub":
        commit = str(info["revision"])[:12]
        print(f"Model: {info['repo_id']} at commit {commit} ({info['architecture']})", file=sys.stderr)
    return enhancer


def _process(
    enhancer, job: Job, pixelate_percent: float | None, self_ensemble: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> None:
    from srmodel.degrade import pixelate
    from srmodel.images import read_icc_profile, read_image, write_image

    image = read_image(job.source, max_pixels=max_pixels)
    profile = read_icc_profile(job.source)  # The results' pixels are in the input's colour space.
    if pixelate_percent is not None:
        image = pixelate(image, pixelate_percent)
        write_image(pixelated_path(job.target), image, like=job.source.name, icc_profile=profile)
    result = enhancer.enhance(image, self_ensemble=self_ensemble)
    write_image(job.target, result, like=job.source.name, icc_profile=profile)


def _warn_about_small_tiles(tile: int, margin: int) -> None:
    """Small tiles are correct but slow: each one computes its margins too, (tile + 2 margin)² pixels for tile²."""
    work = ((tile + 2 * margin) / tile) ** 2
    if work >= 2.0:
        print(f"note: --tile-size {tile} with the model's {margin}-pixel context margin computes about {work:.1f}x "
              "the pixels of each large image; a larger tile is faster", file=sys.stderr)


def _warn_outside_training(percent: float, config: dict) -> None:
    """A model restores the pixelation it trained on; far outside that range it can do more harm than good."""
    from srmodel.degrade import percent_settings

    low, high, _ = percent_settings(config)
    if not low <= percent <= high:
        print(f"note: the model trained on pixelation of {low:g}-{high:g} %; at --pixelate {percent:g} its result "
              "may be further from the original than the pixelated image is", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Runs `enhance`; returns the exit status (0 ok, 1 some skipped, 2 usage error)."""
    from tqdm import tqdm

    from srmodel.errors import SRModelError

    # The folder the system will write to ("new/.." is the current folder once "new" is made, "link/.." the
    # parent of the link's target), so that every check below looks at the files the writes would replace.
    out = Path(os.path.realpath(args.out))
    found = collect_jobs(args.inputs, out, pixelate=args.pixelate is not None)
    jobs, problems = found.jobs, found.problems
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    if not jobs:
        reason = f"error: no input images found in {' '.join(args.inputs)}"
        if found.inside_out:
            reason = (f"error: no input images to enhance: the {found.inside_out} found are inside --out {out}, "
                      "and files there are left out so that results never replace their inputs; choose another --out")
        elif problems:
            reason = f"error: no input images to enhance in {' '.join(args.inputs)}"
        print(reason, file=sys.stderr)
        return EXIT_USAGE
    made = [folder for folder in (out, *out.parents) if not folder.exists()]  # deepest first
    unusable = prepare_out(out)
    if unusable:
        print(f"error: {unusable}", file=sys.stderr)
        return EXIT_USAGE
    try:
        enhancer = _load_enhancer(args.model, args.precision)
        if args.tile_size is not None:
            enhancer.tile_size = args.tile_size
            _warn_about_small_tiles(enhancer.tile_size, enhancer.tile_margin)
        if args.pixelate is not None:
            _warn_outside_training(args.pixelate, enhancer.config)
    except (SRModelError, ValueError, OSError) as exc:
        print(f"error: could not load the model: {exc}", file=sys.stderr)
        for folder in made:  # Made a moment ago and still empty: leave nothing behind.
            with contextlib.suppress(OSError):
                folder.rmdir()
        return EXIT_USAGE

    enhanced, skipped = 0, len(problems)
    with tqdm(jobs, desc="enhance", unit="image", file=sys.stderr, dynamic_ncols=True) as bar:
        for job in bar:
            bar.set_postfix_str(job.source.name, refresh=False)
            try:
                _process(enhancer, job, args.pixelate, args.self_ensemble, round(args.max_megapixels * 1e6))
            except (SRModelError, ValueError, OSError, MemoryError) as exc:
                skipped += 1
                reason = str(exc).removeprefix(f"{job.source}: ")  # ImageError names the file already.
                bar.write(f"skipped: {job.source}: {reason}", file=sys.stderr)
                continue
            enhanced += 1
    print(f"{enhanced} enhanced, {skipped} skipped")
    return EXIT_OK if skipped == 0 else EXIT_SKIPPED
