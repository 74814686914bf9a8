"""Architectures: parameter counts, any input size, safe-mode round trip, registry errors."""

import keras
import numpy as np
import pytest

from srmodel import build_model
from srmodel.architectures import (
    ARCHITECTURES,
    dropped_blocks,
    recover_arguments,
    resolve_arguments,
    warm_start,
)


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
        resolve_arguments("default", {"width": 3})
    with pytest.raises(ValueError, match="Received: name='nope'"):
        resolve_arguments("nope", {})
    with pytest.raises(ValueError, match="Received"):
        build_model("default", filters=0)


def test_resolved_arguments_fill_in_every_default():
    assert resolve_arguments("default", {"blocks": 2}) == {"filters": 32, "blocks": 2, "block_size": 2}
    assert resolve_arguments("tutorial-autoencoder", {}) == {"activity_l1": 10e-10}
    # The resolved arguments rebuild the very same model.
    kwargs = resolve_arguments("default", {"filters": 8})
    assert build_model("default", **kwargs).count_params() == build_model("default", filters=8).count_params()


def _perturbed(model: keras.Model, seed: int = 0) -> keras.Model:
    """Gives every weight a random value, so that a copied weight cannot pass by being all zeros."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.05, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def test_warm_start_grows_blocks_without_changing_the_output():
    small = _perturbed(build_model("default", filters=8, blocks=2))
    deeper = build_model("default", filters=8, blocks=4)
    new_layers = warm_start(deeper, small)
    assert new_layers == ["block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2"]
    x = np.random.default_rng(1).random((1, 37, 50, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(deeper(x)), np.asarray(small(x)), atol=1e-6)
    # The new blocks are trainable from there: their first convolution is not zero.
    assert np.abs(deeper.get_layer("block2_conv1").get_weights()[0]).max() > 0


def test_warm_start_drops_whole_blocks_as_if_their_branch_were_zero():
    deep = _perturbed(build_model("default", filters=8, blocks=4))
    shallow = build_model("default", filters=8, blocks=2)
    assert dropped_blocks(shallow, deep) == ["block2", "block3"]
    assert warm_start(shallow, deep) == []
    # The same network with the two blocks' corrections zeroed computes what the shallower one does.
    for name in ("block2_conv2", "block3_conv2"):
        layer = deep.get_layer(name)
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    x = np.random.default_rng(2).random((1, 29, 40, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(shallow(x)), np.asarray(deep(x)), atol=1e-6)
    assert dropped_blocks(deep, deep) == []


def test_warm_start_refuses_models_that_do_not_fit():
    trained = build_model("default", filters=8, blocks=2)
    with pytest.raises(ValueError, match="'head' has weights"):
        warm_start(build_model("default", filters=16, blocks=2), trained)
    # Part of a block is not a block: a model with block1's first convolution but not its second.
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="block1_conv1")(inputs)
    with pytest.raises(ValueError, match="'block1_conv2' is missing"):
        warm_start(keras.Model(inputs, x), build_model("default", filters=8, blocks=2))


def test_recover_arguments_reads_a_checkpoint_that_recorded_too_little():
    # An older run recorded {} for a 3-block model; today's defaults would build another shape.
    old = build_model("default", filters=8, blocks=3, block_size=2)
    assert recover_arguments("default", old, {}) == {"filters": 8, "blocks": 3, "block_size": 2}
    assert recover_arguments("default", old, {"filters": 8}) == {"filters": 8, "blocks": 3, "block_size": 2}
    tutorial = build_model("tutorial-autoencoder")
    assert recover_arguments("tutorial-autoencoder", tutorial, {}) == resolve_arguments("tutorial-autoencoder", {})
    assert recover_arguments("default", tutorial, {}) is None  # Not a model `default` can build.
