"""Custom layers and losses: the keras.ops paths (JAX, PyTorch) agree with TensorFlow's own ops."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from srmodel.layers import PadToMultiple, _fold, _pad_edge, _unfold
from srmodel.losses import charbonnier, psnr_loss

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("block", [2, 3])
def test_fold_and_unfold_match_tensorflow(block):
    x = np.random.default_rng(block).random((2, 6 * block, 4 * block, 3)).astype(np.float32)
    folded = np.asarray(_fold(tf.constant(x), block))
    np.testing.assert_array_equal(folded, tf.nn.space_to_depth(x, block).numpy())
    np.testing.assert_array_equal(np.asarray(_unfold(tf.constant(folded), block)), x)
    np.testing.assert_array_equal(np.asarray(_unfold(tf.constant(folded), block)), tf.nn.depth_to_space(folded, block))


@pytest.mark.parametrize("shape", [(1, 1), (83, 61), (4, 4), (5, 2)])
def test_edge_padding_matches_the_tensorflow_path(shape):
    x = np.random.default_rng(0).random((2, *shape, 3)).astype(np.float32)
    expected = PadToMultiple(4)(x).numpy()
    np.testing.assert_array_equal(np.asarray(_pad_edge(tf.constant(x), 4)), expected)
    assert expected.shape[1] % 4 == 0 and expected.shape[2] % 4 == 0


def test_charbonnier_is_the_smooth_l1_formula():
    rng = np.random.default_rng(1)
    a, b = rng.random((2, 3, 5, 5, 3)).astype(np.float32)
    expected = np.sqrt((a - b) ** 2 + 1e-6).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(np.asarray(charbonnier(a, b)), expected, rtol=1e-6)


def test_psnr_loss_is_minus_each_patchs_psnr_with_a_floor():
    rng = np.random.default_rng(2)
    a = rng.random((3, 8, 8, 3)).astype(np.float32)
    b = a + rng.normal(0, 0.05, a.shape).astype(np.float32)
    b[2] = a[2]  # a perfect patch stops at the 50 dB floor instead of -inf
    mse = ((a - b) ** 2).mean(axis=(1, 2, 3))
    got = np.asarray(psnr_loss(a, b))
    np.testing.assert_allclose(got[:2], -np.asarray(tf.image.psnr(a[:2], b[:2], 1.0)), atol=0.02)
    np.testing.assert_allclose(got, 10 * np.log10(mse + 1e-5), rtol=1e-5)
    assert got[2] == pytest.approx(-50.0)


def _predict_in_subprocess(backend: str, model: Path, x_path: Path, out_path: Path) -> dict:
    code = (
        "import json, sys, numpy as np, keras\n"
        "import srmodel.layers\n"
        f"m = keras.saving.load_model({str(model)!r}, compile=False, safe_mode=True)\n"
        f"np.save({str(out_path)!r}, np.asarray(m.predict(np.load({str(x_path)!r}), verbose=0)))\n"
        "print(json.dumps({'backend': keras.backend.backend(), 'tf': 'tensorflow' in sys.modules}))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["default", "tutorial-autoencoder"])
def test_bundled_models_give_the_same_pixels_on_jax(tmp_path, name):
    pytest.importorskip("jax", reason="the JAX backend is installed by requirements-dev.txt")
    model = ROOT / "srmodel" / "bundled" / name / "model.keras"
    x = np.random.default_rng(2).random((1, 45, 37, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    jax_run = _predict_in_subprocess("jax", model, tmp_path / "x.npy", tmp_path / "jax.npy")
    assert jax_run == {"backend": "jax", "tf": False}  # no TensorFlow op was needed
    tf_run = _predict_in_subprocess("tensorflow", model, tmp_path / "x.npy", tmp_path / "tf.npy")
    assert tf_run["backend"] == "tensorflow"
    np.testing.assert_allclose(np.load(tmp_path / "jax.npy"), np.load(tmp_path / "tf.npy"), atol=2e-5)
