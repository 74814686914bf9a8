"""bfloat16 inference: when it is chosen, what stays float32, and how far it moves the output."""

from pathlib import Path

import numpy as np
import pytest
from conftest import saved_weight_groups

from srmodel import precision
from srmodel.metrics import image_psnr

REPO = Path(__file__).resolve().parents[1]
ZEN4_FLAGS = "fpu vme avx2 avx512f avx512bw avx512_bf16 avx512_vnni"


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    return path


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(precision, "_gpu_visible", lambda: False)
    monkeypatch.setattr(precision.sys, "platform", "linux")
    monkeypatch.delenv(precision.ENV_VARIABLE, raising=False)


def test_auto_picks_bfloat16_only_where_the_cpu_computes_it(cpu_only, tmp_path):
    assert precision.resolve_precision("auto", cpuinfo=_cpuinfo(tmp_path, ZEN4_FLAGS)) == "bfloat16"
    assert precision.resolve_precision("auto", cpuinfo=_cpuinfo(tmp_path, "fpu avx2 avx512f")) == "float32"
    assert precision.resolve_precision("auto", cpuinfo=tmp_path / "missing") == "float32"
    assert precision.resolve_precision("float32", cpuinfo=_cpuinfo(tmp_path, ZEN4_FLAGS)) == "float32"
    assert precision.resolve_precision(" BFloat16 ") == "bfloat16"  # asked for: honoured on any CPU


def test_auto_keeps_float32_on_a_gpu(cpu_only, monkeypatch, tmp_path):
    monkeypatch.setattr(precision, "_gpu_visible", lambda: True)
    assert precision.resolve_precision("auto", cpuinfo=_cpuinfo(tmp_path, ZEN4_FLAGS)) == "float32"


def test_environment_variable_and_bad_values(cpu_only, monkeypatch):
    monkeypatch.setenv(precision.ENV_VARIABLE, "float32")
    assert precision.resolve_precision(None) == "float32"
    monkeypatch.setenv(precision.ENV_VARIABLE, "fp8")
    with pytest.raises(ValueError, match=r"\$SRMODEL_PRECISION .*auto, float32, bfloat16. Received: 'fp8'"):
        precision.resolve_precision(None)
    with pytest.raises(ValueError, match="Expected precision .* Received: 'half'"):
        precision.resolve_precision("half")
    with pytest.raises(ValueError, match="Received: 'auto'"):
        precision.cast_model(object(), "auto")


def _pixelated_example():
    from srmodel.degrade import pixelate
    from srmodel.images import read_image

    original = read_image(REPO / "examples" / "astronaut.jpg").astype(np.float32)[:256, :256] / 255
    return original, pixelate(original, 40)


@pytest.mark.parametrize("name", ["default", "tutorial-autoencoder"])
def test_bfloat16_twin_keeps_the_image_path_in_float32_and_matches_float32(name):
    from srmodel.folder import BUNDLED_MODEL_DIR, load_model_folder

    model, _, _ = load_model_folder(BUNDLED_MODEL_DIR.parent / name)
    twin = precision.cast_model(model, "bfloat16")
    policies = {layer.name: layer.dtype_policy.name for layer in twin.layers}
    convs = [layer.name for layer in twin.layers if type(layer).__name__ == "Conv2D"]
    assert {policies[n] for n in convs[:-1]} == {"mixed_bfloat16"}
    assert policies[convs[-1]] == "float32"  # the layer that writes pixels (or the correction to them)
    for kept in ("pad_to_multiple", "crop_to_input", "clip_to_unit"):
        assert policies[kept] == "float32"
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}  # the loaded model is untouched
    for mine, theirs in zip(twin.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)

    original, pixelated = _pixelated_example()
    full = np.asarray(model(pixelated[None]))[0]
    half = np.asarray(twin(pixelated[None]))[0]
    assert half.dtype == np.float32
    difference_db = image_psnr(full, half)
    assert difference_db > 50, difference_db  # bfloat16 noise far below the restoration error (~30 dB)
    assert abs(image_psnr(original, full) - image_psnr(original, half)) < 0.02


def test_enhancer_reports_its_precision_and_tiles_the_same(cpu_only):
    from srmodel.hub import load_enhancer

    _, pixelated = _pixelated_example()
    full = load_enhancer(None, precision="float32")
    half = load_enhancer(None, precision="bfloat16")
    assert full.info["precision"] == "float32" and half.info["precision"] == "bfloat16"
    assert "precision='bfloat16'" in repr(half)
    whole = half(pixelated)
    half.tile_size = 64
    np.testing.assert_allclose(half(pixelated), whole, atol=0.02)
    assert image_psnr(full(pixelated), whole) > 50


@pytest.mark.parametrize("target", ["float32", "bfloat16"])
def test_copies_of_a_trained_model_carry_no_optimizer(target, tmp_path):
    from srmodel.architectures import build_model

    model = build_model("default", filters=8, blocks=1)
    model.compile(optimizer="adam", loss="mse")
    images = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    model.fit(images, images, epochs=1, verbose=0)
    assert "optimizer" in saved_weight_groups(_save(model, tmp_path / "trained.keras"))  # what the copy must shed

    copy = precision.cast_model(model, target)
    assert not copy.compiled
    assert "optimizer" not in saved_weight_groups(_save(copy, tmp_path / "copy.keras"))
    for mine, theirs in zip(copy.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def _save(model, path: Path) -> Path:
    model.save(path)
    return path
