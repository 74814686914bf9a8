"""The web demo's logic: pixelate an upload, enhance it, compare with the original.

`app.py` only parses options and calls `build_demo`. Handlers receive the raw upload (the events use
`preprocess=False`) so that `read_image` sees the original file: Gradio's own preprocessing would
open it with Pillow first, turning non-images and decompression bombs into opaque errors and
converting 16-bit or paletted images. The public events (`/pixelate`, `/enhance`) return plain data
and a per-session state; private follow-up events turn that state into the page's views.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import html
import io
import logging
import math
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from srmodel.degrade import percent_settings, pixelate
from srmodel.errors import ImageError, ModelLoadError, SRModelError

log = logging.getLogger("srmodel.demo")

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# SSIM on tens of megapixels needs gigabytes; larger images are compared on a central crop.
METRICS_MAX_SIDE = 2048
# Result files are kept this long (a visitor's session rarely lasts longer), then pruned.
OUTPUT_TTL_S = 3600


@dataclass
class ServingModel:
    """The enhancer the demo serves, plus a notice when it is not the one that was asked for."""

    enhancer: Any
    requested: str | None
    notice: str | None = None


def load_serving_model(source: str | None, precision: str | None = None) -> ServingModel:
    """Loads `source` once at start-up, falling back to the bundled default if that fails.

    A Space whose Hub model is briefly unreachable should still serve something, and say so.
    """
    from srmodel.hub import load_enhancer

    if not source:
        return ServingModel(load_enhancer(None, precision), None)
    log.info("Loading model %r (from the Hugging Face Hub unless it is a local folder) ...", source)
    try:
        return ServingModel(load_enhancer(source, precision), source)
    except Exception as exc:  # noqa: BLE001  (Hub, network and IO failures all mean "fall back")
        log.warning("Could not load model %r (%s); falling back to the bundled default.", source, exc)
        notice = (f"Could not load the requested model `{source}` ({_reason(exc)}). "
                  "Serving the bundled default model instead.")
        try:
            return ServingModel(load_enhancer(None, precision), source, notice)
        except ModelLoadError as fallback_exc:
            raise ModelLoadError(
                f"Could not load {source!r} ({exc}), nor the bundled default model ({fallback_exc})"
            ) from fallback_exc


def _reason(exc: Exception, limit: int = 600) -> str:
    """Why loading failed, as a visitor may read it: our own errors as written (they are meant for people, and
    may end in a link), others with their type; a very long one is cut at a space, never inside a word or link."""
    text = str(exc) if isinstance(exc, SRModelError) else f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


# ---------------------------------------------------------------------------------------------
# Model description


def model_origin(info: dict) -> str:
    """Human-readable 'where from': Hub repo@revision, bundled default, or a local folder."""
    repo_id = info.get("repo_id")
    if repo_id:
        revision = info.get("revision")
        name = f"{repo_id}@{revision}" if revision else repo_id
        from huggingface_hub import constants

        return f"Hugging Face Hub [`{name}`]({constants.ENDPOINT.rstrip('/')}/{repo_id})"  # HF_ENDPOINT, if set
    source = str(info.get("source") or "")
    path = info.get("path")
    if source == "bundled" or (path and Path(path).resolve() == _bundled_dir()):
        return "the project's bundled weights (`srmodel/bundled/default`)"
    if path:
        return f"local folder `{path}`"
    return f"`{source}`" if source else "unknown source"


def _bundled_dir() -> Path:
    from srmodel.folder import BUNDLED_MODEL_DIR

    return BUNDLED_MODEL_DIR.resolve()


def model_summary(info: dict) -> str:
    """One line for the header: which model, from where, and its validation PSNR if published."""
    line = f"Serving the `{info.get('architecture') or 'unknown'}` model from {model_origin(info)}"
    validation = (info.get("metrics") or {}).get("validation") or {}
    model, pixelated = validation.get("model") or {}, validation.get("pixelated") or {}
    if isinstance(model.get("psnr"), (int, float)) and isinstance(pixelated.get("psnr"), (int, float)):
        line += f" (validation PSNR {model['psnr']:.2f} dB vs {pixelated['psnr']:.2f} dB pixelated)"
    return line + "."


def model_markdown(info: dict) -> str:
    """The 'which model is serving' panel: origin, architecture and validation metrics."""
    lines = [
        f"**Serving:** {model_origin(info)}  ",
        f"**Architecture:** `{info.get('architecture') or 'unknown'}`",
    ]
    if info.get("precision"):
        lines[-1] += f"  \n**Compute precision:** {info['precision']}"
    validation = (info.get("metrics") or {}).get("validation") or {}
    rows = [(label, validation.get(key)) for key, label in
            (("model", "Model"), ("pixelated", "Pixelated input"), ("bicubic", "Bicubic upscaling"))]
    rows = [(label, v) for label, v in rows if isinstance(v, dict)]
    if rows:
        pct = validation.get("percent")
        pct_text = f"{pct:g}" if isinstance(pct, (int, float)) else pct
        lines += ["", f"Validation set, pixelated to {pct_text} %:" if pct else "Validation set:", "",
                  "| | PSNR (dB) | SSIM |", "|---|---:|---:|"]
        lines += [f"| {label} | {_fmt(v.get('psnr'), 2)} | {_fmt(v.get('ssim'), 4)} |" for label, v in rows]
    else:
        lines += ["", "_No validation metrics were published with this model._"]
    return "\n".join(lines)


def _fmt(value: Any, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and math.isfinite(value) else "–"


# ---------------------------------------------------------------------------------------------
# Uploads and outputs


def _text(message: str) -> str:
    """A message for gr.Error, which renders HTML: <, > and & escaped, quotes kept readable for API clients."""
    return html.escape(message, quote=False)


def upload_path(payload: Any) -> tuple[str | bytes, str]:
    """(path or bytes, display name) of a raw gr.Image payload; raises gr.Error when empty."""
    if isinstance(payload, (str, Path)):
        return str(payload), Path(payload).name
    if isinstance(payload, dict):
        name = payload.get("orig_name") or "image"
        url = payload.get("url") or ""
        if payload.get("path"):
            return str(payload["path"]), name
        if url.startswith("data:"):
            try:
                return base64.b64decode(url.split(",", 1)[1]), name
            except (IndexError, ValueError):
                raise gr.Error("The pasted image data is not valid base64.", title="Unreadable image",
                               print_exception=False) from None
    raise gr.Error("Upload an image first (or pick one of the examples).", title="No image", print_exception=False)


@dataclass(frozen=True)
class Upload:
    image: np.ndarray
    key: str  # sha256 of the file: which pixelation in a session belongs to which upload
    stem: str
    icc_profile: bytes | None  # results are written with it, as their pixels are in its colour space
    format: str | None  # Pillow's name for the file format, e.g. "TIFF"


def upload_key(payload: Any) -> str | None:
    """The content key `load_upload` gives an upload (sha256 of its bytes), or None when it cannot be read."""
    try:
        source, _ = upload_path(payload)
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except (gr.Error, OSError):
        return None
    return hashlib.sha256(data).hexdigest()


def load_upload(payload: Any, max_pixels: int) -> Upload:
    """The decoded upload, or gr.Error with a readable reason."""
    from srmodel.images import read_icc_profile, read_image

    source, name = upload_path(payload)
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as exc:
        raise gr.Error(f"Could not read the uploaded file: {_text(str(exc))}", title="Upload failed",
                       print_exception=False) from None
    try:
        image = read_image(data, max_pixels=max_pixels)
    except ImageError as exc:
        # read_image names in-memory data "<N bytes>"; the visitor knows the file by its name.
        message = str(exc).replace(f"<{len(data)} bytes>", name)
        if "too large" in message:
            message += f". This demo accepts images up to {max_pixels / 1e6:g} megapixels."
        raise gr.Error(_text(message), title="Cannot use this image", print_exception=False) from None
    return Upload(image, hashlib.sha256(data).hexdigest(), Path(name).stem or "image", read_icc_profile(data),
                  _format_of(data))


def _format_of(data: bytes) -> str | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format
    except Exception:  # noqa: BLE001  (read_image has already accepted the data; the name is only a hint)
        return None


class OutputDir:
    """Where result PNGs go: one fresh sub-folder per file, pruned after `OUTPUT_TTL_S`."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root or tempfile.mkdtemp(prefix="srmodel-demo-"))
        self.root.mkdir(parents=True, exist_ok=True)
        if root is None:  # A folder of our own: gone when the server stops.
            atexit.register(shutil.rmtree, self.root, ignore_errors=True)

    def write_png(self, image: np.ndarray, name: str, icc_profile: bytes | None = None) -> str:
        """Writes a lossless PNG (alpha, 16-bit and the colour profile kept) and returns its path."""
        from srmodel.images import write_image

        self.prune()
        folder = self.root / uuid.uuid4().hex
        folder.mkdir()
        path = folder / f"{_safe_stem(name)}.png"
        write_image(path, image, icc_profile=icc_profile)
        return str(path)

    def prune(self, now: float | None = None) -> None:
        cutoff = (now or time.time()) - OUTPUT_TTL_S
        for folder in self.root.iterdir():
            try:
                if folder.stat().st_mtime < cutoff:
                    for file in folder.iterdir():
                        file.unlink(missing_ok=True)
                    folder.rmdir()
            except OSError:
                pass  # Another thread pruned it first.


def _safe_stem(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80].strip("._")
    return cleaned or "image"


# ---------------------------------------------------------------------------------------------
# Metrics


def as_unit_float(image: np.ndarray) -> np.ndarray:
    """Color channels of an image as float32 in [0, 1] (alpha left out: the model does not change it)."""
    if image.dtype == np.uint8:
        x = image.astype(np.float32) / 255.0
    elif image.dtype == np.uint16:
        x = image.astype(np.float32) / 65535.0
    else:
        x = np.clip(image.astype(np.float32), 0.0, 1.0)
    if x.ndim == 3 and x.shape[2] in (2, 4):
        x = x[..., :-1]
    return x


def _central_crop(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return image[top : top + side, left : left + side]


def compare(original: np.ndarray, **images: np.ndarray) -> dict[str, Any]:
    """PSNR/SSIM of each named image against `original` (central crop for very large images)."""
    from srmodel.metrics import image_psnr, image_ssim

    cropped = max(original.shape[:2]) > METRICS_MAX_SIDE
    ref = as_unit_float(_central_crop(original, METRICS_MAX_SIDE))
    region = f"central {ref.shape[1]}×{ref.shape[0]} crop" if cropped else "whole image"  # width×height
    result: dict[str, Any] = {"region": region}
    for name, image in images.items():
        x = as_unit_float(_central_crop(image, METRICS_MAX_SIDE))
        result[name] = {"psnr": round(image_psnr(ref, x), 3), "ssim": round(image_ssim(ref, x), 4)}
    return result


def metrics_markdown(session: dict | None) -> str:
    """The result panel's text: metrics vs the original, or why there are none."""
    if not session:
        return ""
    metrics = session.get("metrics") or {}
    if not metrics.get("compared_with_original"):
        return ("**No original to compare with:** you enhanced your own image directly, so PSNR/SSIM "
                "can't be measured. Use **Pixelate** first to see how close the model gets to the original.")
    enhanced_label = "Enhanced (self-ensemble ×8)" if metrics.get("self_ensemble") else "Enhanced"
    rows = [(label, metrics.get(key)) for key, label in (("pixelated", "Pixelated"), ("enhanced", enhanced_label))]
    title = (
        f"**Compared with the original** ({metrics.get('region', 'whole image')}, "
        f"pixelated to {_fmt(metrics.get('percent'), 0)} %):"
    )
    lines = [title, "", "| | PSNR (dB) ↑ | SSIM ↑ |", "|---|---:|---:|"]
    lines += [f"| {label} | {_fmt(v.get('psnr'), 2)} | {_fmt(v.get('ssim'), 4)} |" for label, v in rows if v]
    if not metrics.get("enhanced"):
        lines += ["", "Now press **Enhance**."]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Handlers


# What the original-image panel can show as uploaded (MPO: the JPEGs of many phones and cameras).
BROWSER_FORMATS = {"PNG", "JPEG", "MPO", "GIF", "WEBP", "BMP"}


class DemoHandlers:
    """The functions behind the buttons; one instance per app, shared by all sessions (stateless)."""

    def __init__(self, enhancer: Any, max_pixels: int, outputs: OutputDir | None = None):
        self.enhancer = enhancer
        self.max_pixels = int(max_pixels)
        self.outputs = outputs or OutputDir()

    def show_upload(self, image: Any) -> Any:
        """Checks a new upload at once, so a bad file is named now rather than at the first button press, and
        shows a format browsers cannot display (TIFF, say) as a PNG of the same pixels."""
        upload = load_upload(image, self.max_pixels)
        if upload.format in BROWSER_FORMATS:
            return gr.skip()
        return self.outputs.write_png(upload.image, upload.stem, upload.icc_profile)

    def repixelate(self, image: Any, percent: Any, session: dict | None) -> tuple[Any, Any, Any]:
        """The slider moved after Pixelate: pixelates again, so Enhance never restores a level no longer shown."""
        session = session or {}
        stale = session.get("percent") and session.get("key") == upload_key(image)
        if not stale or float(session["percent"]) == _check_percent(percent):
            return gr.skip(), gr.skip(), gr.skip()
        return self.pixelate(image, percent, session)

    def pixelate(self, image: Any, percent: Any, session: dict | None) -> tuple[str, dict, dict]:
        """Pixelates the upload; returns (pixelated PNG path, metrics vs original, session state)."""
        percent = _check_percent(percent)
        upload = load_upload(image, self.max_pixels)
        pixelated = pixelate(upload.image, percent)
        path = self.outputs.write_png(pixelated, f"{upload.stem}_pixelated_{percent:g}", upload.icc_profile)
        metrics = {"compared_with_original": True, "percent": percent, **compare(upload.image, pixelated=pixelated)}
        state = {"key": upload.key, "stem": upload.stem, "percent": percent, "input": path, "enhanced": None,
                 "metrics": metrics}
        return path, metrics, state

    def enhance(
        self, image: Any, self_ensemble: Any, session: dict | None, progress: gr.Progress | None = None
    ) -> tuple[str, dict, dict]:
        """Enhances the pixelated version of the upload if this session made one, else the upload itself.

        `self_ensemble` averages the model's output over 8 rotations and mirror images (8× the time).
        Returns (enhanced PNG path, metrics, session state); metrics compare with the original only
        when there is one.
        """
        self_ensemble = _check_flag(self_ensemble, "Self-ensemble")
        upload = load_upload(image, self.max_pixels)
        stem, profile = upload.stem, upload.icc_profile
        session = session or {}
        pixelated = session.get("key") == upload.key and session.get("percent")
        if pixelated:
            percent = float(session["percent"])
            model_input = pixelate(upload.image, percent)  # Deterministic: recomputed, not stored.
            input_path = session.get("input")
            if not input_path or not Path(input_path).is_file():
                input_path = self.outputs.write_png(model_input, f"{stem}_pixelated_{percent:g}", profile)
        else:
            model_input, input_path = upload.image, self.outputs.write_png(upload.image, f"{stem}_input", profile)

        def on_tile(done: int, total: int) -> None:
            if progress is not None and total > 1:
                progress((done, total), desc="Enhancing", unit="tiles")

        if progress is not None:
            progress(0.0, desc="Enhancing")
        try:
            enhanced = self.enhancer.enhance(model_input, progress=on_tile, self_ensemble=self_ensemble)
        except MemoryError:
            raise gr.Error("The server ran out of memory on this image; try a smaller one.", title="Too large") from None
        path = self.outputs.write_png(enhanced, f"{stem}_enhanced", profile)
        if pixelated:
            metrics = {"compared_with_original": True, "percent": percent, "self_ensemble": self_ensemble,
                       **compare(upload.image, pixelated=model_input, enhanced=enhanced)}
        else:
            metrics = {"compared_with_original": False, "self_ensemble": self_ensemble,
                       "note": "Enhanced the uploaded image directly; there is no original to compare with."}
        state = {"key": upload.key, "stem": stem, "percent": session.get("percent") if pixelated else None,
                 "input": input_path, "enhanced": path, "metrics": metrics}
        return path, metrics, state


def _check_flag(value: Any, label: str) -> bool:
    """A checkbox value as sent by the page or an API client: a JSON boolean, nothing else."""
    if isinstance(value, bool):
        return value
    raise gr.Error(f"{label} must be true or false; got {_text(repr(value))}.", title="Invalid setting",
                   print_exception=False)


def _check_percent(percent: Any) -> float:
    try:
        value = float("nan") if isinstance(percent, bool) else float(percent)
    except (TypeError, ValueError):
        value = float("nan")
    if not (0 < value <= 100):
        raise gr.Error(f"Pixelation must be a percentage in (0, 100]; got {_text(repr(percent))}.",
                       title="Invalid setting", print_exception=False)
    return value


def render_views(session: dict | None, current: Any):
    """Projects the session state onto the page: (session, slider, side-by-side images, metrics, download).

    `current` is the upload on the page now. A result whose upload is no longer there (the visitor picked
    another image, or cleared it, while it ran) is dropped, with the session, instead of being shown.
    """
    session = session or {}
    if session.get("key") and (current is None or session["key"] != upload_key(current)):
        return reset_views()
    before, after = session.get("input"), session.get("enhanced")
    slider = (before, after) if before and after else None
    label = "Pixelated (model input)" if session.get("percent") else "Your image (model input)"
    download = gr.DownloadButton(value=after, visible=bool(after))
    return session or None, slider, gr.Image(value=before, label=label), after, metrics_markdown(session), download


def reset_views():
    """A new upload invalidates the previous result: (session, slider, images, metrics, download)."""
    return (None, None, gr.Image(value=None, label="Model input"), None, "",
            gr.DownloadButton(value=None, visible=False))


# ---------------------------------------------------------------------------------------------
# Page

CSS = """
.notice { border-left: 4px solid #d97706; background: #fffbeb; padding: 0.5em 1em; border-radius: 6px; }
.notice * { color: #78350f !important; }
#header p { margin-top: 0; }
"""

API_HELP = """
Two endpoints are public (see **Use via API** at the bottom of the page):

* `/pixelate(image, percent)` → `(pixelated_png, metrics)`
* `/enhance(image, self_ensemble=False)` → `(enhanced_png, metrics)`: enhances the pixelated version if
  the same client pixelated the same image before, otherwise the image as given; `self_ensemble=True`
  averages 8 rotated and mirrored passes (about 8× slower, a little more accurate).

```python
from gradio_client import Client, handle_file
client = Client("http://127.0.0.1:7860/")  # this page's address
pixelated, metrics = client.predict(handle_file("photo.jpg"), 40, api_name="/pixelate")
enhanced, metrics = client.predict(handle_file("photo.jpg"), api_name="/enhance")
print(enhanced, metrics["enhanced"])  # local PNG path, {'psnr': ..., 'ssim': ...}
```
"""


def example_files(folder: Path = EXAMPLES_DIR) -> list[str]:
    """Example images shipped in `examples/`, sorted by name (none if the folder is missing)."""
    if not folder.is_dir():
        return []
    return [str(p) for p in sorted(folder.iterdir()) if p.suffix.lower() in EXAMPLE_SUFFIXES]


def build_demo(serving: ServingModel, max_megapixels: float = 40.0, concurrency_limit: int = 2) -> gr.Blocks:
    """Builds the page around an already-loaded model; call `.launch()` on the result."""
    if not max_megapixels > 0:
        raise ValueError(f"`max_megapixels` must be > 0. Received: max_megapixels={max_megapixels!r}")
    info = serving.enhancer.info
    low, high, default = percent_settings(getattr(serving.enhancer, "config", None))
    handlers = DemoHandlers(serving.enhancer, max_pixels=int(max_megapixels * 1_000_000))

    # Gradio keeps its own copy of every upload and result: delete those after an hour too (examples are kept).
    with gr.Blocks(title="srmodel — pixelate and enhance", delete_cache=(OUTPUT_TTL_S, OUTPUT_TTL_S)) as demo:
        gr.Markdown(
            "# Pixelate, then enhance\n"
            "Pick an example or upload a photo, **Pixelate** it, then let the model **Enhance** it and "
            "compare with the original. You can also enhance your own low-quality photo directly. "
            f"Images up to {max_megapixels:g} megapixels; PNG, JPEG, WebP, TIFF, BMP, GIF.  \n"
            f"<small>{model_summary(info)}</small>",
            elem_id="header",
        )
        if serving.notice:
            gr.Markdown(f"⚠️ {serving.notice}", elem_classes="notice")
        session = gr.State(None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                image_in = gr.Image(label="Original image", type="filepath", image_mode=None,
                                    sources=["upload", "clipboard"], format="png", height=360,
                                    elem_id="original")
                percent = gr.Slider(low, high, value=default, step=1, label="Resolution kept (%)",
                                    info="Lower means bigger blocks and a harder job for the model.")
                with gr.Row():
                    pixelate_btn = gr.Button("Pixelate", variant="secondary")
                    enhance_btn = gr.Button("Enhance", variant="primary")
                self_ensemble = gr.Checkbox(False, label="Self-ensemble",
                                            info="Enhance 8 rotated and mirrored copies and average them: "
                                                 "about 8× slower, a little more accurate.",
                                            elem_id="self-ensemble")
                examples = example_files()
                if examples:
                    gr.Examples(examples, inputs=image_in, label="Examples (public domain / CC0)")
            with gr.Column(scale=1):
                slider = gr.ImageSlider(label="Before ↔ after (drag)", type="filepath", format="png",
                                        max_height=420, interactive=False, elem_id="slider")
                metrics_md = gr.Markdown(elem_id="metrics")
                download = gr.DownloadButton("Download result (PNG)", visible=False, variant="primary")
        with gr.Row():
            input_view = gr.Image(label="Model input", type="filepath", format="png", interactive=False, height=320,
                                  elem_id="model-input")
            enhanced_view = gr.Image(label="Enhanced", type="filepath", format="png", interactive=False, height=320,
                                     elem_id="enhanced")
        metrics_json = gr.JSON(visible=False, label="Metrics")
        # The handlers' own outputs (and the API's): the page shows them through render_views, which drops a
        # result whose upload was replaced while it ran.
        pixelated_out = gr.Image(visible=False, type="filepath", format="png", label="Pixelated")
        enhanced_out = gr.Image(visible=False, type="filepath", format="png", label="Enhanced")
        with gr.Accordion("About the model and the API", open=False):
            gr.Markdown(model_markdown(info))
            gr.Markdown(API_HELP)

        views = [slider, input_view, enhanced_view, metrics_md, download]
        render = {"fn": render_views, "inputs": [session, image_in], "outputs": [session, *views],
                  "api_visibility": "private", "queue": False, "preprocess": False}
        image_in.change(reset_views, None, [session, *views], api_visibility="private", queue=False)
        image_in.upload(handlers.show_upload, image_in, image_in, api_visibility="private", preprocess=False)
        pixelate_btn.click(
            handlers.pixelate, [image_in, percent, session], [pixelated_out, metrics_json, session],
            api_name="pixelate", preprocess=False, show_progress_on=[slider, input_view],
        ).success(**render)
        percent.release(
            handlers.repixelate, [image_in, percent, session], [pixelated_out, metrics_json, session],
            api_visibility="private", preprocess=False, show_progress_on=[slider, input_view],
        ).success(**render)
        enhance_btn.click(
            _with_progress(handlers.enhance), [image_in, self_ensemble, session], [enhanced_out, metrics_json, session],
            api_name="enhance", preprocess=False, show_progress_on=[slider, enhanced_view],
        ).success(**render)

    demo.queue(default_concurrency_limit=concurrency_limit, max_size=64)
    return demo


def _with_progress(fn):
    """Wraps a handler so Gradio injects a `gr.Progress` (it looks for a Progress default)."""

    def enhance(image: Any, self_ensemble: Any, session: dict | None, progress: gr.Progress = gr.Progress()):  # noqa: B008
        return fn(image, self_ensemble, session, progress=progress)

    enhance.__doc__ = fn.__doc__
    return enhance
