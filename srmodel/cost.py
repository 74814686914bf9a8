"""How much arithmetic a model spends per output pixel.

Speed on a CPU is multiply-adds divided by what the cores can do, so counting them says how fast a
model *could* run before timing it, and whether a speed target is within reach of an architecture at all
(`bench/arithmetic.py` divides a measured matrix-multiply rate by this count).
"""

from __future__ import annotations

import keras
import numpy as np


def multiply_adds_per_pixel(model: keras.Model, probe_size: int = 64) -> float:
    """Multiply-adds of every convolution, per output pixel, from one probe call on a square image.

    Counts `Conv2D` layers only (the registered architectures' sole weighted layers), each at its first
    call (none of them shares a layer): a model with other weighted layers raises rather than being
    under-counted, and so does one without a functional graph. `probe_size` is rounded up to the model's
    grid (its `PadToMultiple` layers), so that no padding inflates the count.
    """
    from srmodel.inference import _round_up, grid_multiple

    if probe_size < 1:
        raise ValueError(f"Expected probe_size >= 1. Received: probe_size={probe_size}")
    try:
        inputs = model.inputs
    except AttributeError:  # a Sequential model built without an Input has no graph to probe
        inputs = None
    if not inputs:
        raise ValueError(f"Only models with a functional graph can be counted. Received: {type(model).__name__} without inputs")
    probe_size = _round_up(probe_size, grid_multiple(model))
    convolutions = []
    for layer in model.layers:
        if type(layer) is keras.layers.Conv2D:
            convolutions.append(layer)
        elif layer.weights:
            raise ValueError(
                "Only Conv2D layers can be counted. "
                f"Received: layer {layer.name!r} of type {type(layer).__name__} with weights."
            )
    if not convolutions:
        return 0.0
    probe = keras.Model(inputs, [layer.output for layer in convolutions])
    outputs = probe([np.zeros((1, probe_size, probe_size, 3), "float32")])
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    total = 0
    for layer, output in zip(convolutions, outputs, strict=True):
        height, width = int(output.shape[1]), int(output.shape[2])
        total += height * width * int(np.prod(layer.kernel.shape))  # kh·kw·(in/groups)·out per position
    return total / probe_size**2
