"""Shared test helpers: tiny model folders and a local fake Hugging Face Hub."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
for _path in (TESTS_DIR, REPO_ROOT):  # `import hub_server` and `import srmodel` without installing
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

WRITE_TOKEN = "hf_test_alice_write_0123456789abcdef"
READ_TOKEN = "hf_test_alice_read_0123456789abcdef"
OTHER_TOKEN = "hf_test_bob_write_0123456789abcdef"
FINE_GRAINED_TOKEN = "hf_test_alice_fine_0123456789abcdef"  # fine-grained, read-only on alice
FINE_WRITE_TOKEN = "hf_test_alice_finew_0123456789abcdef"  # fine-grained, may write to alice-org only
ALL_TOKENS = (WRITE_TOKEN, READ_TOKEN, OTHER_TOKEN, FINE_GRAINED_TOKEN, FINE_WRITE_TOKEN)


def srgb_profile() -> bytes:
    """An sRGB ICC profile made by Pillow's littleCMS, for tests of colour profiles travelling with images."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def make_model_folder(
    path: str | Path, *, seed: int = 0, psnr: float = 31.2, arch_kwargs: dict | None = None, card: bool = True
) -> Path:
    """Writes a complete, untrained model folder (all 5 files) at `path`; `seed` picks the weights."""
    import keras
    import numpy as np
    from PIL import Image

    from srmodel import __version__, build_model
    from srmodel.folder import (
        CARD_FILE,
        CONFIG_FILE,
        FORMAT_VERSION,
        METRICS_FILE,
        MODEL_FILE,
        SAMPLES_FILE,
        atomic_save_model,
        atomic_write_json,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    kwargs = arch_kwargs if arch_kwargs is not None else {"filters": 8, "blocks": 1}
    keras.utils.set_random_seed(seed)
    model = build_model("default", **kwargs)
    rng = np.random.default_rng(seed)  # untrained models may start as the identity: make seeds differ
    model.set_weights([w + rng.normal(0.0, 0.05, w.shape).astype(w.dtype) for w in model.get_weights()])
    atomic_save_model(model, path / MODEL_FILE)
    config = {
        "format_version": FORMAT_VERSION,
        "srmodel_version": __version__,
        "architecture": {"name": "default", "kwargs": kwargs},
        "pixelation": {"percent_range": [20, 60], "validation_percent": 40, "interpolation": "INTER_AREA"},
        "training": {"data": ["lfw"], "epochs": 1, "batch_size": 2, "patch_size": 32, "loss": "l1",
                     "learning_rate": 0.001, "seed": seed},
    }
    scores = {"psnr": psnr, "ssim": 0.91}
    metrics = {"validation": {"percent": 40, "images": 8, "patch_size": 80, "model": scores,
                              "pixelated": {"psnr": 27.5, "ssim": 0.82}, "bicubic": {"psnr": 28.1, "ssim": 0.84}}}
    atomic_write_json(path / CONFIG_FILE, config)
    atomic_write_json(path / METRICS_FILE, metrics)
    if card:
        from srmodel.modelcard import render_model_card

        (path / CARD_FILE).write_text(render_model_card(config, metrics), encoding="utf-8")
    Image.fromarray(np.zeros((8, 24, 3), np.uint8)).save(path / SAMPLES_FILE)
    return path


@pytest.fixture
def model_folder(tmp_path) -> Path:
    return make_model_folder(tmp_path / "model")


@pytest.fixture
def fake_hub():
    """A running fake Hub (tests/hub_server.py) with users alice (member of org "alice-org") and bob."""
    from hub_server import READ, Token, serve

    hub = serve(
        tokens={
            WRITE_TOKEN: Token("alice"),
            READ_TOKEN: Token("alice", role=READ),
            OTHER_TOKEN: Token("bob"),
            FINE_GRAINED_TOKEN: Token(
                "alice", role="fineGrained",
                scoped=[{"entity": {"type": "user", "name": "alice"}, "permissions": ["repo.content.read"]}],
            ),
            FINE_WRITE_TOKEN: Token(
                "alice", role="fineGrained",
                scoped=[{"entity": {"type": "org", "name": "alice-org"}, "permissions": ["repo.write"]}],
            ),
        },
        orgs={"alice": ["alice-org"]},
    )
    yield hub
    hub.stop()


def point_hf_at(monkeypatch, endpoint: str, home: Path, token: str | None) -> None:
    """Points env vars AND `huggingface_hub.constants` (read at import time) at a fake Hub and fresh HF_HOME."""
    from huggingface_hub import constants

    home.mkdir(parents=True, exist_ok=True)
    env = {"HF_ENDPOINT": endpoint, "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN_PATH", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                "HUGGING_FACE_HUB_TOKEN", "HF_XET_CACHE"):
        monkeypatch.delenv(key, raising=False)
    if token is None:
        monkeypatch.delenv("HF_TOKEN", raising=False)
    else:
        monkeypatch.setenv("HF_TOKEN", token)
    patched = {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,
    }
    for key, value in patched.items():
        monkeypatch.setattr(constants, key, value)


@pytest.fixture
def hub_server(fake_hub, tmp_path, monkeypatch) -> str:
    """Yields the fake Hub's URL with HF_ENDPOINT, a fresh HF_HOME and alice's write token in HF_TOKEN."""
    point_hf_at(monkeypatch, fake_hub.url, tmp_path / "hf_home", WRITE_TOKEN)
    yield fake_hub.url


def hf_env(endpoint: str, home: Path, token: str | None = WRITE_TOKEN, **extra: str) -> dict:
    """Environment for subprocess tests (they read HF_* at import, so env vars suffice)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_UPDATE_CHECK="1", **extra)
    if token:
        env["HF_TOKEN"] = token
    return env


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def saved_weight_groups(path: Path) -> set[str]:
    """Top-level groups of the weights inside a .keras file: "layers", and "optimizer" if it was saved."""
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
        return set(weights.keys())
