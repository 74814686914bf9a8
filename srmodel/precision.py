"""Inference precision: float32, or bfloat16 compute where the CPU runs it natively (about 2x faster).

Zen 4 and recent Xeon CPUs have AVX512-BF16 (or AMX) instructions, with which oneDNN runs a 3×3
convolution in bfloat16 about twice as fast as in float32. Models are always stored in float32; a
bfloat16 *twin* is cloned from the loaded model at run time, and only where it pays, so a saved file
never depends on the machine that wrote it.

The twin keeps the image path in float32: the input, the global residual that adds the network's
correction to it, the last convolution (the one that writes pixels or the correction), the crop and
the clip. Only the hidden feature maps are rounded to bfloat16, which moves outputs by about 1/300
of a grey level on average (tests/test_precision.py measures it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PRECISIONS = ("auto", "float32", "bfloat16")
ENV_VARIABLE = "SRMODEL_PRECISION"

# Layers of the registered architectures that carry the image itself rather than hidden features.
_FLOAT32_LAYERS = frozenset({"pad_to_multiple", "global_residual", "crop_to_input", "clip_to_unit"})
_BFLOAT16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> set[str]:
    """The instruction-set flags of the first CPU listed in `cpuinfo` (empty where it cannot be read)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cpu_has_native_bfloat16(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """True where oneDNN has bfloat16 dot-product instructions; elsewhere bfloat16 is emulated and slow."""
    return sys.platform.startswith("linux") and bool(cpu_flags(cpuinfo) & _BFLOAT16_CPU_FLAGS)


def _gpu_visible() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def resolve_precision(requested: str | None = None, *, cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """"float32" or "bfloat16" for a requested precision; None reads $SRMODEL_PRECISION (default "auto").

    "auto" picks bfloat16 only on a CPU-only machine whose CPU computes it natively: a GPU is fast
    in float32 already, and an emulated bfloat16 convolution is slower than a float32 one.
    """
    source = "precision"
    if requested is None:
        requested, source = os.environ.get(ENV_VARIABLE, "auto") or "auto", f"${ENV_VARIABLE}"
    value = str(requested).strip().lower()
    if value not in PRECISIONS:
        raise ValueError(f"Expected {source} to be one of {', '.join(PRECISIONS)}. Received: {requested!r}")
    if value != "auto":
        return value
    return "bfloat16" if cpu_has_native_bfloat16(cpuinfo) and not _gpu_visible() else "float32"


def _last_conv_name(model) -> str | None:
    import keras

    names = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    return names[-1] if names else None


def cast_model(model, precision: str):
    """An uncompiled copy of `model` computing in `precision` ("float32" or "bfloat16"), with the same weights.

    For bfloat16 the hidden layers get Keras' mixed_bfloat16 policy (float32 weights, bfloat16
    compute) and the image path stays float32 (see the module docstring).
    """
    import keras

    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"Expected precision float32 or bfloat16. Received: {precision!r}")
    keep = _FLOAT32_LAYERS | {_last_conv_name(model)}

    def clone_layer(layer):
        config = layer.get_config()
        if "dtype" in config:
            mixed = precision == "bfloat16" and layer.name not in keep
            config["dtype"] = "mixed_bfloat16" if mixed else "float32"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone_layer)
    if copy.compiled:
        # Keras 3 compiles a clone like its original, and `save` then writes that optimizer's state
        # into the file: a trained model exported this way came out 2.8× its size. Rebuilding from
        # the config gives the same layers, uncompiled.
        copy = copy.__class__.from_config(copy.get_config())
    copy.set_weights(model.get_weights())
    return copy


def compute_model(model, precision: str | None = None) -> tuple[str, object]:
    """(resolved precision, the model to run): the stored float32 model itself, or its bfloat16 twin.

    The one place that decides when a twin is cloned, for the Enhancer and the benchmarks' whole-image runs.
    """
    resolved = resolve_precision(precision)
    return resolved, (cast_model(model, resolved) if resolved != "float32" else model)
