"""NumPy training patches (srmodel.patches) and the any-backend fine-tune script (tools/finetune.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srmodel.degrade import pixelate
from srmodel.errors import DataError
from srmodel.patches import PatchSampler

ROOT = Path(__file__).resolve().parents[1]


def _images(value: int, count: int = 3, size=(120, 100)) -> list[np.ndarray]:
    return [np.full((*size, 3), value, dtype=np.uint8) for _ in range(count)]


def test_batches_are_pixelated_originals_in_range():
    rng = np.random.default_rng(0)
    photo = [(rng.random((150, 130, 3)) * 255).astype(np.uint8)]
    sampler = PatchSampler([photo], patch_size=40, percent_range=(40.0, 40.0), min_scale=0.3)
    x, y = sampler.batch(8, np.random.default_rng(1))
    assert x.shape == y.shape == (8, 40, 40, 3) and x.dtype == y.dtype == np.float32
    assert 0.0 <= y.min() and y.max() <= 1.0
    for pixelated, original in zip(x, y, strict=True):
        np.testing.assert_array_equal(pixelated, pixelate(original, 40.0))


def test_full_scale_patches_are_turned_crops_of_the_image():
    image = (np.random.default_rng(2).random((32, 32, 3)) * 255).astype(np.uint8)
    sampler = PatchSampler([[image]], patch_size=32, min_scale=1.0)
    _, y = sampler.batch(6, np.random.default_rng(3))
    turns = [np.rot90(flipped, k) for flipped in (image, image[:, ::-1]) for k in range(4)]
    for patch in y:
        assert any(np.array_equal(np.rint(patch * 255).astype(np.uint8), turned) for turned in turns)


def test_small_images_are_enlarged_to_a_patch():
    sampler = PatchSampler([_images(128, 1, size=(10, 30))], patch_size=24)
    x, y = sampler.batch(2, np.random.default_rng(0))
    assert x.shape == (2, 24, 24, 3)


def test_balanced_groups_are_drawn_equally_often():
    sampler = PatchSampler([_images(0, 50), _images(255, 2)], patch_size=16, min_scale=0.5)
    _, y = sampler.batch(400, np.random.default_rng(4))
    white = (y.mean(axis=(1, 2, 3)) > 0.5).mean()
    assert 0.42 < white < 0.58


def test_bad_arguments_are_named():
    with pytest.raises(DataError, match="No training images"):
        PatchSampler([[], []])
    with pytest.raises(ValueError, match="Received: \\(60.0, 20.0\\)"):
        PatchSampler([_images(1)], percent_range=(60.0, 20.0))


def _write_folder(folder: Path, value: int) -> None:
    folder.mkdir(parents=True)
    for i in range(3):
        pixels = np.clip(np.random.default_rng(i).normal(value, 40, (90, 96, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")


def test_finetune_runs_on_jax_and_the_result_loads_in_tensorflow(tmp_path):
    pytest.importorskip("jax", reason="the JAX backend is installed by requirements-dev.txt")
    import keras

    _write_folder(tmp_path / "faces", 90)
    _write_folder(tmp_path / "photos", 160)
    init = ROOT / "srmodel" / "bundled" / "default" / "model.keras"
    command = [
        sys.executable, str(ROOT / "tools" / "finetune.py"), "--init", str(init),
        "--data", str(tmp_path / "faces"), "--data", str(tmp_path / "photos"), "--balance", "--no-split",
        "--minutes", "0.01", "--batch-size", "2", "--workers", "1", "--probe-steps", "3",
        "--steps-per-epoch", "2", "--min-scale", "0.5", "--sample-seed", "5", "--out", str(tmp_path / "out"),
    ]
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "images per source: [3, 3]" in done.stdout
    record = json.loads((tmp_path / "out" / "finetune.json").read_text())
    assert record["backend"] == "jax" and record["steps"] >= 2 and record["patches"] == record["steps"] * 2
    assert record["seed"] == 0 and record["sample_seed"] == 5
    from srmodel.folder import load_model_folder

    tuned, config, _ = load_model_folder(tmp_path / "out")
    bundled = json.loads((init.parent / "config.json").read_text())
    assert config["architecture"] == bundled["architecture"]  # the layers do not change in a fine-tune
    assert config["training"]["tool"] == "tools/finetune.py" and config["training"]["backend"] == "jax"
    start = keras.saving.load_model(init, safe_mode=True, compile=False)
    assert tuned.count_params() == start.count_params()
    moved = [not np.array_equal(a, b) for a, b in zip(tuned.get_weights(), start.get_weights(), strict=True)]
    assert any(moved)


def _finetune_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("finetune", ROOT / "tools" / "finetune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_finetune_sample_seed_seeds_the_patches_but_keeps_the_validation_split(tmp_path):
    finetune = _finetune_module()
    for name, value in (("faces", 90), ("photos", 160)):
        _write_folder(tmp_path / name, value)
        for i in range(3, 10):
            Image.fromarray(np.full((40, 40, 3), value, dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    init = str(ROOT / "srmodel" / "bundled" / "default" / "model.keras")
    common = ["--init", init, "--data", str(tmp_path / "faces"), "--data", str(tmp_path / "photos"), "--balance",
              "--minutes", "1", "--out", str(tmp_path / "out"), "--seed", "3"]
    plain = finetune.parse_args(common)
    redrawn = finetune.parse_args([*common, "--sample-seed", "11"])
    assert finetune.train_settings(plain).patch_seed == 3 and finetune.train_settings(redrawn).patch_seed == 11
    assert finetune.training_groups(plain) == finetune.training_groups(redrawn)
    assert sum(len(group) for group in finetune.training_groups(plain)) < 20  # the split held some files out


def test_finetune_names_a_missing_model(tmp_path):
    command = [sys.executable, str(ROOT / "tools" / "finetune.py"), "--init", str(tmp_path / "nope.keras"),
               "--data", str(tmp_path), "--minutes", "1", "--out", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "--init: no such model file. Received:" in done.stderr


def test_finetune_names_a_folder_without_images(tmp_path):
    (tmp_path / "empty").mkdir()
    init = ROOT / "srmodel" / "bundled" / "default" / "model.keras"
    command = [sys.executable, str(ROOT / "tools" / "finetune.py"), "--init", str(init),
               "--data", str(tmp_path / "empty"), "--minutes", "1", "--out", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "error: --data: no images found" in done.stderr


def _finetune_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("finetune_tool", ROOT / "tools" / "finetune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_finetune_checks_its_options_by_train_pys_rules_before_any_work(tmp_path, capsys):
    finetune = _finetune_module()
    init = str(ROOT / "srmodel" / "bundled" / "default" / "model.keras")
    base = ["--init", init, "--data", str(tmp_path), "--minutes", "1"]
    cases = [
        (["--patch-size", "0"], "--patch-size must be >= 8"),
        (["--min-scale", "5"], "--min-scale must be in (0, 1]"),
        (["--percent-range", "60", "20"], "--percent-range LOW HIGH needs 0 < LOW <= HIGH <= 100"),
        (["--val-split", "1.5"], "--val-split must be in (0, 1)"),
        # An existing folder with files, --init's own above all, would be overwritten in place.
        (["--out", str(Path(init).parent)], "--out must be a new or empty folder"),
    ]
    for extra, message in cases:
        argv = [*base, "--out", str(tmp_path / "new"), *extra] if "--out" not in extra else [*base, *extra]
        with pytest.raises(SystemExit) as stop:
            finetune.parse_args(argv)
        assert stop.value.code == 2
        assert message in capsys.readouterr().err, extra
    assert finetune.parse_args([*base, "--out", str(tmp_path / "new")]).patch_size == 80


def test_finetune_batches_stop_with_an_error_when_every_worker_died(tmp_path):
    """A worker's exception used to leave the fit waiting on the queue for ever (a lent GPU's minutes with it).

    Run as the tool runs, in its own process on the JAX backend: forking this test process, which has TensorFlow's
    threads running, could deadlock the workers before they fail.
    """
    pytest.importorskip("jax", reason="the JAX backend is installed by requirements-dev.txt")
    probe = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("finetune_tool", {str(ROOT / "tools" / "finetune.py")!r})
finetune = importlib.util.module_from_spec(spec)
spec.loader.exec_module(finetune)
from srmodel.errors import SRModelError

class Broken:
    def batch(self, size, rng):
        raise ValueError("Expected a non-empty image")

stream = finetune.BatchStream(Broken(), batch_size=2, workers=2, seed=0, poll_s=0.5)
try:
    next(iter(stream))
except SRModelError as exc:
    print("RAISED", exc)
finally:
    stream.close()
"""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert "RAISED every patch worker died" in done.stdout, done.stderr[-3000:]
