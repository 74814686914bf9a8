"""The model card (README.md) written next to every trained model and shown on its Hub page.

The YAML front matter carries the Hub metadata (library, task, licence) and a `model-index`
with validation PSNR/SSIM, so the Hub shows the numbers and `huggingface_hub.ModelCard` can read them back.
"""

from __future__ import annotations

import json
import shlex
from pathlib import PurePath
from typing import Any

TAGS = ["super-resolution", "image-restoration", "depixelation", "keras", "srmodel"]
PLACEHOLDER_REPO = "USER/NAME"  # in the usage snippet of a card written before the model has a Hub repo


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _training_sets(config: dict) -> list[str]:
    """Names of the sets in config["training"]["data"]: "lfw" (downloaded by name) as is, folders by basename."""
    data = (config.get("training") or {}).get("data") or []
    entries = [data] if isinstance(data, str) else list(data) if isinstance(data, (list, tuple)) else []
    names: list[str] = []
    for entry in entries:
        text = str(entry).strip().rstrip("/")
        name = text if text == "lfw" else PurePath(text.replace("\\", "/")).name  # --data takes no Hub dataset ids
        if name and name.lower() not in {n.lower() for n in names}:
            names.append(name)
    return names


def _metadata(config: dict, metrics: dict, model_name: str) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    validation = metrics.get("validation") or {}
    percent = validation.get("percent", (config.get("pixelation") or {}).get("validation_percent"))
    sets = _training_sets(config) or ["images"]
    split_name = f"validation split of {', '.join(sets)}"
    results = []
    for key, label in (("psnr", "PSNR"), ("ssim", "SSIM")):
        value = _number((validation.get("model") or {}).get(key))
        if value is not None:
            results.append(
                EvalResult(
                    task_type="image-to-image",
                    task_name="Depixelation",
                    dataset_type=sets[0].lower(),
                    dataset_name=f"{split_name}, pixelated {percent}%" if percent else split_name,
                    dataset_split="validation",
                    metric_type=key,
                    metric_name=label,
                    metric_value=round(value, 4),
                )
            )
    data = ModelCardData(
        library_name="keras",
        pipeline_tag="image-to-image",
        # The weights carry their training images' terms, not the code's MIT licence (see the card's Licence).
        license="other",
        license_name="training-data-terms",
        tags=TAGS,
        # No `datasets`: the Hub links each entry to huggingface.co/datasets/NAME, and --data names local folders
        # (and LFW's own site), not Hub datasets. The card's text names them.
        model_name=model_name,
        eval_results=results or None,
    )
    return data.to_yaml()


def _metrics_table(validation: dict) -> str:
    rows = [("srmodel (this model)", "model"), ("Pixelated input", "pixelated"), ("Bicubic upscaling", "bicubic")]
    lines = ["| Method | PSNR (dB) ↑ | SSIM ↑ |", "|---|---|---|"]
    for label, key in rows:
        scores = validation.get(key) or {}
        psnr, ssim = _number(scores.get("psnr")), _number(scores.get("ssim"))
        if psnr is None and ssim is None:
            continue
        cell_psnr = f"{psnr:.2f}" if psnr is not None else "–"
        cell_ssim = f"{ssim:.4f}" if ssim is not None else "–"
        bold = "**" if key == "model" else ""
        lines.append(f"| {bold}{label}{bold} | {cell_psnr} | {cell_ssim} |")
    return "\n".join(lines) if len(lines) > 2 else "_No validation metrics were recorded._"


def _settings_table(config: dict) -> str:
    arch = config.get("architecture") or {}
    rows = [("Architecture", f"`{arch.get('name')}` {json.dumps(arch.get('kwargs') or {})}")]
    pix = config.get("pixelation") or {}
    if pix:
        text = (
            f"downscaled to {pix.get('percent_range')} % of the size and scaled back "
            f"({pix.get('interpolation', '?')}); validation at {pix.get('validation_percent')} %"
        )
        rows.append(("Pixelation", text))
    for key, value in (config.get("training") or {}).items():
        rows.append((key.replace("_", " ").capitalize(), f"`{json.dumps(value)}`"))
    rows.append(("srmodel version", str(config.get("srmodel_version", "?"))))
    return "\n".join(["| Setting | Value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def render_model_card(config: dict, metrics: dict, repo_id: str | None = None, revision: str | None = None) -> str:
    """Returns README.md text for a model folder; `repo_id` fills the usage snippets (a placeholder otherwise).

    A card pushed to a branch other than main loads from that branch: copied from its page, a snippet that
    loaded main's model would silently give another model.
    """
    config, metrics = config or {}, metrics or {}
    arch_name = (config.get("architecture") or {}).get("name", "default")
    model_name = repo_id.split("/")[-1] if repo_id else f"srmodel-{arch_name}"
    repo = repo_id or PLACEHOLDER_REPO
    branch = revision if revision and revision != "main" else None
    source = json.dumps(f"{repo}@{branch}" if branch else repo)  # a Python string literal
    download = f'{json.dumps(repo)}, "model.keras"' + (f", revision={json.dumps(branch)}" if branch else "")
    cli_source = shlex.quote(f"{repo}@{branch}" if branch else repo)
    validation = metrics.get("validation") or {}
    percent = validation.get("percent", (config.get("pixelation") or {}).get("validation_percent", "?"))
    images, patch = validation.get("images", "?"), validation.get("patch_size", "?")
    trained_on = ", ".join("LFW" if n.lower() == "lfw" else n for n in _training_sets(config)) or "unrecorded data"
    return f"""---
{_metadata(config, metrics, model_name).strip()}
---

# {model_name}

A small Keras model from srmodel that restores pixelated and
low-resolution images: it takes an image (any size, gray/RGB/RGBA) and returns a sharper image of the same size.
Architecture: `{arch_name}`.

![pixelated | model | original](samples.png)

## Results

{_validation_line(config, images, trained_on)}, {patch}×{patch} centre crops, pixelated to {percent} % of their size (higher is better):

{_metrics_table(validation)}

## Usage

With the srmodel package installed (it registers the custom layers the model needs):

```python
import srmodel
from srmodel.images import read_image, write_image

enhancer = srmodel.load_enhancer({source})  # add "@<revision>" to pin a branch or commit
write_image("restored.png", enhancer.enhance(read_image("pixelated.png")))
```

Or from the command line: `python -m srmodel enhance pixelated.png --out restored/ --model {cli_source}`.

The Keras model alone takes float32 RGB in [0, 1], shaped (batch, height, width, 3), and returns the same shape:

```python
import keras
import srmodel  # registers the custom layers
from huggingface_hub import hf_hub_download

model = keras.saving.load_model(hf_hub_download({download}), safe_mode=True)
```

The Hub's generic Keras snippet, `keras.saving.load_model("hf://{repo}")`, does not apply here: it expects the
unzipped layout that `model.save("hf://...")` writes, while this repo keeps `model.keras` beside srmodel's own
`config.json`.

## Training

{_settings_table(config)}

## Limitations

- Trained and validated on {trained_on}: other content (text, line art, screenshots) may restore poorly.
- It guesses plausible detail; it cannot recover information that pixelation removed. Do not use it to
  identify people or as evidence of what an image originally showed.
- Metrics come from synthetic pixelation (area downscaling and upscaling); real-world blur, noise or JPEG
  artifacts differ.

## Licence

The srmodel code that trained this model is MIT-licensed. The weights were learned from the training images
({trained_on}), so those images' terms apply to them: check them before any use beyond research.{_data_terms(config)}
"""


def is_rendered_card(text: str, config: dict, metrics: dict) -> bool:
    """Whether `text` is the card srmodel renders for this config and metrics, i.e. not edited by hand.

    A push re-renders such a card for its repo and an export for its new results; an edited one is the user's.
    """
    return text == render_model_card(config, metrics)


def _validation_line(config: dict, images: Any, trained_on: str) -> str:
    training = config.get("training") or {}
    if training.get("validation_held_out") is False:  # a single image serves both sides
        return f"Validation on the single training image itself ({trained_on}; not held out)"
    noun = "image" if images == 1 else "images"
    return f"Validation on {images} held-out {noun} of the training sets ({trained_on})"


def _data_terms(config: dict) -> str:
    """What we know of the terms of the sets the bundled models train on, for the card's Licence section."""
    names = {name.lower() for name in _training_sets(config)}
    known = []
    if "lfw" in names:
        known.append("LFW is for research use")
    if any(name.startswith("bsd") for name in names):
        known.append("the BSDS300 photos behind BSD200 are for non-commercial research")
    return f" ({'; '.join(known)}.)" if known else ""
