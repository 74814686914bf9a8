"""srmodel: small, honest restoration of pixelated and low-resolution images."""

__version__ = "0.1.0"

# Imports Keras (and TensorFlow, a few seconds): this registers the custom layers, so that after
# `import srmodel` any srmodel model file loads with `keras.saving.load_model(path, safe_mode=True)`.
from srmodel.architectures import build_model  # noqa: E402
from srmodel.degrade import pixelate  # noqa: E402

__all__ = ["__version__", "build_model", "pixelate", "load_enhancer"]


def __getattr__(name: str):
    # Imported on first use: the Hub client and the inference code are not needed to build or load a model.
    if name == "load_enhancer":
        from srmodel.hub import load_enhancer

        return load_enhancer
    if name == "Enhancer":
        from srmodel.inference import Enhancer

        return Enhancer
    raise AttributeError(f"module 'srmodel' has no attribute {name!r}")
