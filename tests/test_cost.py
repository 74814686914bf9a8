"""Multiply-add counts, checked against hand counts of the registered architectures."""

from __future__ import annotations

import keras
import pytest

from srmodel import build_model
from srmodel.cost import multiply_adds_per_pixel


def test_tutorial_autoencoder_count_matches_its_layers():
    full, half, quarter = 1, 1 / 4, 1 / 16  # pixels per output pixel at each of its three scales
    by_hand = 9 * (
        full * (3 * 64 + 64 * 64 + 128 * 64 + 64 * 64 + 64 * 3)
        + half * (64 * 128 + 128 * 128 + 256 * 128 + 128 * 128)
        + quarter * 128 * 256
    )
    assert multiply_adds_per_pixel(build_model("tutorial-autoencoder")) == pytest.approx(by_hand) == 335_232


@pytest.mark.parametrize(("filters", "blocks", "block_size"), [(32, 20, 2), (8, 0, 1), (16, 3, 4), (8, 2, 3)])
def test_default_count_is_head_blocks_and_tail_at_the_folded_resolution(filters, blocks, block_size):
    folded = 3 * block_size**2
    by_hand = 9 * (folded * filters + 2 * blocks * filters * filters + filters * folded) / block_size**2
    model = build_model("default", filters=filters, blocks=blocks, block_size=block_size)
    assert multiply_adds_per_pixel(model) == pytest.approx(by_hand)


def test_layers_it_cannot_count_are_refused_not_skipped():
    inputs = keras.Input(shape=(None, None, 3))
    model = keras.Model(inputs, keras.layers.Dense(3, name="mixer")(inputs))
    with pytest.raises(ValueError, match="Received: layer 'mixer' of type Dense"):
        multiply_adds_per_pixel(model)
    with pytest.raises(ValueError, match="Received: Sequential without inputs"):
        multiply_adds_per_pixel(keras.Sequential([keras.layers.Conv2D(3, 3)]))
    with pytest.raises(ValueError, match="Received: probe_size=0"):
        multiply_adds_per_pixel(build_model("default", blocks=0), probe_size=0)
