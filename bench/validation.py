"""Model selection without the benchmarks: PSNR / SSIM on a training run's own validation files.

    python bench/validation.py --run runs/default --model a=runs/exp-a --model b=runs/exp-b

`train.py` picks its best epoch on `--patch-size` centre crops (80×80 by default), which mostly come
from faces (LFW is 90 % of the files). To compare runs on general photos as well, without looking at Set14, B100 or any other benchmark,
this script rebuilds the validation split of `--run` exactly as `train.py` made it (same `--data` folders,
`--exclude` list, `--val-split` and `--seed`, read from its config.json; run it from the folder that
training ran in, since those paths may be relative) and scores every model on those held-out files at full
size, one row per `--data` source. The models must not have trained on those files: use runs whose
config.json has the same data, split and seed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import common
import numpy as np
from quality import add_precision_argument, baseline_methods, model_methods, read_rgb, tally_images, write_json


def validation_files(run: Path) -> tuple[dict[str, list[Path]], dict]:
    """The held-out files of the run, grouped by `--data` source, and the run's training settings."""
    from srmodel.data import load_exclusions, scan_images, split_paths

    config_file = run / "config.json"
    try:
        training = json.loads(config_file.read_text(encoding="utf-8"))["training"]
        roots, exclude = training["data"], training.get("exclude")
        val_split, seed = training["val_split"], training["seed"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        sys.exit(f"error: --run needs a finished training folder with a config.json. Received: {run} ({exc})")
    if val_split is None:  # tools/finetune.py --no-split: it trained on whole folders and held nothing out
        sys.exit(f"error: --run {run} held out no validation split (its config.json records val_split null, as "
                 "tools/finetune.py --no-split writes); pass --run the train.py run whose split it kept")
    missing = [root for root in roots if not Path(root).is_dir()]
    if missing:
        sys.exit(f"error: the run's --data folders are not here: {missing}. Run from where training ran.")
    scan = scan_images(roots, load_exclusions(exclude))
    _, val = split_paths(scan.paths, val_split, seed)
    groups = {str(root): [p for p in val if Path(root) in p.parents] for root in roots}
    return {root: paths for root, paths in groups.items() if paths}, training


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="training folder whose validation split to use")
    parser.add_argument("--model", action="append", metavar="NAME=FOLDER", required=True,
                        help="model folder to score (repeatable)")
    parser.add_argument("--percents", nargs="+", type=float, default=[40.0], help="pixelation percents")
    parser.add_argument("--limit", type=int, default=None, help="only the first N files of each source")
    parser.add_argument("--source", action="append", metavar="TEXT",
                        help="only the --data sources whose path contains TEXT (repeatable; default: all)")
    add_precision_argument(parser)
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the unrounded means here (selection rules can be finer than the table's 0.01 dB)")
    args = parser.parse_args(argv)
    common.check_json_path(parser, args.json)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be >= 1. Received: {args.limit}")
    args.percents = common.checked_percents(parser, args.percents)
    groups, training = validation_files(args.run)
    if args.source:  # before the models load: a typo fails in seconds
        groups = {root: paths for root, paths in groups.items() if any(text in root for text in args.source)}
        if not groups:
            sys.exit(f"error: no --data source of the run matches --source {args.source}")
    notes: list[str] = []
    models = common.parse_model_specs(args.model)
    methods = {**baseline_methods(), **model_methods(models, notes, args.precision)}
    names = list(methods)
    precision = common.resolved_precision(args.precision)
    print(f"Validation split of {args.run}: val_split {training['val_split']}, seed {training['seed']}; "
          f"models computed in {precision}")
    print("\n| source | % | n | " + " | ".join(names) + " |")
    print("|---|---:|---:|" + "---:|" * len(names))
    rows: list[dict] = []
    for root, paths in groups.items():
        images = (read_rgb(path).astype(np.float32) / 255.0 for path in paths[: args.limit])
        for percent, tallies in tally_images(images, args.percents, methods).items():
            summary = {name: tally.summary() for name, tally in tallies.items()}
            cells = " | ".join(f"{summary[n]['psnr']:.2f} / {summary[n]['ssim']:.4f}" for n in names)
            print(f"| {root} | {percent:g} | {summary[names[0]]['images']} | {cells} |", flush=True)
            rows.append({"source": root, "percent": percent, "images": summary[names[0]]["images"],
                         "methods": summary})
    for note in notes:
        print(f"Note: {note}")
    if args.json:
        write_json(args.json, {"run": str(args.run), "precision": precision,
                               "models": {name: str(folder) for name, folder in models}, "rows": rows,
                               "notes": notes})
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(common.run_main(main))
