"""The bundled models: load with safe_mode, are small, and actually restore pixelated photos."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import srmodel
from srmodel.folder import BUNDLED_MODEL_DIR, FOLDER_FILES
from srmodel.metrics import image_psnr

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_bundled_folder_is_complete_and_small():
    for name in FOLDER_FILES:
        assert (BUNDLED_MODEL_DIR / name).is_file(), name
    assert (BUNDLED_MODEL_DIR / "model.keras").stat().st_size < 5_000_000
    config = json.loads((BUNDLED_MODEL_DIR / "config.json").read_text())
    assert config["architecture"]["name"] == "default"


@pytest.mark.parametrize("name", ["astronaut.jpg", "coffee.jpg"])
def test_bundled_default_beats_pixelated_and_bicubic(name):
    from srmodel.degrade import bicubic_from_small

    enhancer = srmodel.load_enhancer()
    original = np.asarray(Image.open(EXAMPLES / name).convert("RGB"))
    pixelated = srmodel.pixelate(original, 40)
    restored = enhancer.enhance(pixelated)
    assert restored.shape == original.shape and restored.dtype == np.uint8
    score = image_psnr(original / 255.0, restored / 255.0)
    assert score > image_psnr(original / 255.0, pixelated / 255.0) + 1.0
    assert score > image_psnr(original / 255.0, bicubic_from_small(original, 40) / 255.0)


def test_bundled_tutorial_autoencoder_loads():
    folder = BUNDLED_MODEL_DIR.parent / "tutorial-autoencoder"
    enhancer = srmodel.load_enhancer(str(folder))
    assert enhancer.info["architecture"] == "tutorial-autoencoder"
    assert enhancer.model.count_params() == 1_110_403


def test_import_srmodel_is_enough_to_load_a_model_file_with_plain_keras():
    # README promises this: `model.keras` loads with keras.saving.load_model(..., safe_mode=True)
    # after `import srmodel`. A fresh interpreter, so no other test has registered the layers already.
    import subprocess
    import sys

    code = (
        "import srmodel, keras, sys; "
        "m = keras.saving.load_model(sys.argv[1], safe_mode=True, compile=False); print(m.count_params())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(BUNDLED_MODEL_DIR / "model.keras")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.strip().splitlines()[-1]) > 0
