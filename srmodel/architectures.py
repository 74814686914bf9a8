"""Model builders and the name registry used by `train.py --arch` and saved configs.

Every model maps a batch of float32 RGB images in [0, 1] of any height and width to restored images
of the same shape, clipped to [0, 1]. Padding to the network's stride happens inside the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import keras
import numpy as np

from srmodel.layers import CropToMatch, DepthToSpace, PadToMultiple, SpaceToDepth

ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {}


def register(name: str):
    """Adds a builder to the registry under `name` (the string stored in config.json)."""

    def wrap(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        ARCHITECTURES[name] = builder
        return builder

    return wrap


def _builder(name: str) -> Callable[..., keras.Model]:
    if name not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture. Expected one of {sorted(ARCHITECTURES)}. Received: name={name!r}")
    return ARCHITECTURES[name]


def build_model(name: str = "default", **kwargs) -> keras.Model:
    """Builds a registered architecture by name, e.g. `build_model("tutorial-autoencoder")`."""
    return _builder(name)(**kwargs)


def resolve_arguments(name: str, kwargs: dict) -> dict:
    """Validates an architecture's keyword arguments and returns them with every default filled in.

    Runs record the resolved arguments, so a model keeps its shape on `--resume` and in config.json
    even when a later release changes a builder's defaults (as `default` went from 4 to 6, 8, 12, 16, 20, 18 and 16 blocks).
    """
    import inspect

    builder = _builder(name)
    try:
        bound = inspect.signature(builder).bind(**kwargs)
    except TypeError as exc:
        raise ValueError(f"Invalid arguments for architecture {name!r}: {exc}. Received: {kwargs}") from None
    bound.apply_defaults()
    return dict(bound.arguments)


def _structure(model: keras.Model) -> list[tuple]:
    """Layer types and weight shapes in order: what must agree for two models to hold the same weights.

    Not names: Keras numbers unnamed layers (conv2d_7, ...) differently in every build.
    """
    return [(type(layer).__name__, tuple(tuple(w.shape) for w in layer.weights)) for layer in model.layers]


def _inspect_default(model: keras.Model) -> dict:
    names = {layer.name for layer in model.layers}
    blocks = sum(1 for name in names if name.startswith("block") and name.endswith("_add"))
    block_size = model.get_layer("space_to_depth").block if "space_to_depth" in names else 1
    return {"filters": model.get_layer("head").filters, "blocks": blocks, "block_size": block_size}


# Read an architecture's arguments back from a built model, for builders whose defaults have changed.
_INSPECTORS: dict[str, Callable[[keras.Model], dict]] = {"default": _inspect_default}


def recover_arguments(name: str, model: keras.Model, recorded: dict) -> dict | None:
    """The fully resolved arguments that rebuild `model`'s exact layers, or None when none are found.

    A run started before `resolve_arguments` existed recorded only the arguments it was given, e.g.
    `{}` for `default` when that meant 4 blocks. Its checkpoint still holds the truth: try the
    recorded arguments with today's defaults, then what the model's own layers say, and keep the
    first that rebuilds the same structure.
    """
    candidates = [dict(recorded)]
    inspector = _INSPECTORS.get(name)
    if inspector is not None:
        try:
            candidates.append({**recorded, **inspector(model)})
        except (ValueError, AttributeError):  # Not the layers this builder makes.
            pass
    wanted = _structure(model)
    for kwargs in candidates:
        try:
            resolved = resolve_arguments(name, kwargs)
            if _structure(build_model(name, **resolved)) == wanted:
                return resolved
        except ValueError:
            continue
    return None


def _clip_to_unit(x):
    """Keeps outputs in [0, 1]; computed in float32 so mixed precision never leaks into outputs."""
    return keras.layers.ReLU(max_value=1.0, dtype="float32", name="clip_to_unit")(x)


@register("tutorial-autoencoder")
def build_tutorial_autoencoder(activity_l1: float = 10e-10) -> keras.Model:
    """The tutorial's U-Net-like autoencoder, layer for layer (1,110,403 parameters).

    Differences that do not change its parameters: it accepts any H×W (edge-padded to a multiple of
    4, cropped back) and its output is clipped to [0, 1].
    """
    reg = keras.regularizers.L1(activity_l1) if activity_l1 else None

    def conv(filters: int, x):
        return keras.layers.Conv2D(
            filters, 3, padding="same", activation="relu", activity_regularizer=reg
        )(x)

    inputs = keras.Input(shape=(None, None, 3), name="image")
    padded = PadToMultiple(4, dtype="float32", name="pad_to_multiple")(inputs)
    l1 = conv(64, padded)
    l2 = conv(64, l1)
    l3 = keras.layers.MaxPooling2D(padding="same")(l2)
    l4 = conv(128, l3)
    l5 = conv(128, l4)
    l6 = keras.layers.MaxPooling2D(padding="same")(l5)
    l7 = conv(256, l6)
    l8 = keras.layers.UpSampling2D()(l7)
    l9 = conv(128, l8)
    l10 = conv(128, l9)
    l11 = keras.layers.Add()([l5, l10])
    l12 = keras.layers.UpSampling2D()(l11)
    l13 = conv(64, l12)
    l14 = conv(64, l13)
    l15 = keras.layers.Add()([l14, l2])
    decoded = conv(3, l15)
    cropped = CropToMatch(dtype="float32", name="crop_to_input")([decoded, inputs])
    return keras.Model(inputs, _clip_to_unit(cropped), name="tutorial_autoencoder")


@register("default")
def build_default(filters: int = 32, blocks: int = 16, block_size: int = 2) -> keras.Model:
    """Our CPU-friendly restorer: space-to-depth encoder, residual blocks, pixel-shuffle decoder.

    Folding `block_size`² pixels into channels lets every 3×3 convolution see a wider neighbourhood
    at 1/`block_size`² of the cost; the global residual means the network only learns the detail
    that pixelation removed.
    """
    if filters < 1 or blocks < 0 or block_size < 1:
        raise ValueError(
            f"Expected filters >= 1, blocks >= 0, block_size >= 1. "
            f"Received: filters={filters}, blocks={blocks}, block_size={block_size}"
        )
    inputs = keras.Input(shape=(None, None, 3), name="image")
    # The input, the global residual and everything after it stay float32 under a mixed-precision
    # policy: only the correction is computed in 16 bits, never the image it is added to.
    padded = PadToMultiple(block_size, dtype="float32", name="pad_to_multiple")(inputs)
    x = SpaceToDepth(block_size, name="space_to_depth")(padded) if block_size > 1 else padded
    x = keras.layers.Conv2D(filters, 3, padding="same", name="head")(x)
    head = x
    for i in range(blocks):
        y = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{i}_conv1")(x)
        y = keras.layers.Conv2D(filters, 3, padding="same", name=f"block{i}_conv2")(y)
        x = keras.layers.Add(name=f"block{i}_add")([x, y])
    if blocks:
        x = keras.layers.Add(name="long_skip")([x, head])
    # Zero-initialised tail: training starts from the identity (the pixelated input), not from noise.
    x = keras.layers.Conv2D(3 * block_size * block_size, 3, padding="same", kernel_initializer="zeros", name="tail")(x)
    if block_size > 1:
        x = DepthToSpace(block_size, name="depth_to_space")(x)
    x = keras.layers.Add(dtype="float32", name="global_residual")([x, padded])
    x = CropToMatch(dtype="float32", name="crop_to_input")([x, inputs])
    return keras.Model(inputs, _clip_to_unit(x), name="srmodel_default")


_RESIDUAL_LAYER = re.compile(r"^(block\d+)_conv[12]$")


def _absent_blocks(target: keras.Model, source: keras.Model) -> dict[str, list[str]]:
    """The weighted layers of each residual block of `source` that `target` lacks altogether, by block."""
    target_names = {layer.name for layer in target.layers}
    blocks: dict[str, list[str]] = {}
    for layer in source.layers:
        match = _RESIDUAL_LAYER.match(layer.name)
        if match and layer.weights:
            blocks.setdefault(match.group(1), []).append(layer.name)
    return {block: names for block, names in blocks.items() if not any(name in target_names for name in names)}


def dropped_blocks(target: keras.Model, source: keras.Model) -> list[str]:
    """The residual blocks of `source` (e.g. "block19") that `target` lacks altogether.

    A residual block only adds a correction to the features that pass it, so a model without it is the
    same network minus that correction: `warm_start` may leave such blocks out (a shallower, faster
    model from a trained deeper one), but never part of a block or any other layer.
    """
    return list(_absent_blocks(target, source))


def warm_start(target: keras.Model, source: keras.Model) -> list[str]:
    """Copies `source`'s weights into `target` layer by layer (matched by name); returns new layers.

    This is how a deeper model starts from a trained shallower one (the bundled `default` grew from a
    trained 4-block one to 20 blocks in five steps, then shed its last four, two at a time): every trained layer must
    exist in `target` with the same shapes, except whole residual blocks that `target` lacks
    (`dropped_blocks`: a shallower model from a deeper one). New layers keep their initialisation,
    except the last convolution of each new residual branch (`*_conv2`), which is zeroed: a new block
    then adds nothing, so the grown model starts out computing exactly what the trained one did and
    training only has to improve on it.
    """
    target_layers = {layer.name: layer for layer in target.layers}
    dropped = {name for names in _absent_blocks(target, source).values() for name in names}
    problems = []
    source_weights: dict[str, list[np.ndarray]] = {}  # Read once: each read copies the variables.
    for layer in source.layers:
        weights = layer.get_weights()
        if not weights or layer.name in dropped:
            continue
        source_weights[layer.name] = weights
        match = target_layers.get(layer.name)
        shapes = [w.shape for w in weights]
        if match is None:
            problems.append(f"layer {layer.name!r} is missing")
        elif (found := [tuple(w.shape) for w in match.weights]) != shapes:
            problems.append(f"layer {layer.name!r} has weights {found}, not {shapes}")
    if problems:
        raise ValueError(f"The trained model does not fit into the new one: {'; '.join(problems)}.")
    source_names = {layer.name for layer in source.layers}
    new_layers = []
    for layer in target.layers:
        if layer.name in source_weights:
            layer.set_weights(source_weights[layer.name])
        elif layer.name not in source_names and layer.get_weights():
            new_layers.append(layer.name)
            if layer.name.endswith("_conv2"):
                layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    return new_layers
