"""Architectures: parameter counts, any input size, safe-mode round trip, registry errors."""

import keras
import numpy as np
import pytest

from srmodel import build_model
from srmodel.architectures import ARCHITECTURES, check_arguments


def test_tutorial_parameter_count():
    assert build_model("tutorial-autoencoder").count_params() == 1_110_403


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_any_size_round_trips_in_shape(name):
    model = build_model(name)
    for height, width in [(83, 61), (1, 1), (3, 3), (80, 80), (17, 4)]:
        x = np.random.default_rng(0).random((2, height, width, 3)).astype(np.float32)
        y = np.asarray(model(x))
        assert y.shape == x.shape
        assert y.min() >= 0.0 and y.max() <= 1.0


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_safe_mode_round_trip(tmp_path, name):
    model = build_model(name)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(1).random((1, 21, 35, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in loaded.layers)


def test_default_starts_as_identity():
    x = np.random.default_rng(2).random((1, 40, 40, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(build_model("default")(x)), x, atol=1e-6)


def test_unknown_name_and_bad_arguments():
    with pytest.raises(ValueError, match="Received: name='nope'"):
        build_model("nope")
    with pytest.raises(ValueError, match="Invalid arguments"):
        check_arguments("default", {"width": 3})
    with pytest.raises(ValueError, match="Received"):
        build_model("default", filters=0)
