"""The exceptions srmodel raises for problems a user can fix, each with a readable message."""


class SRModelError(Exception):
    """Base class for srmodel's user-facing errors."""


class ModelLoadError(SRModelError):
    """A model could not be found, downloaded, validated or loaded (Hub or local folder)."""


class HubAuthError(SRModelError):
    """No usable Hugging Face token, or the token cannot write where it was asked to."""


class ImageError(SRModelError):
    """An input is not a readable image, is truncated, or is larger than allowed."""


class DataError(SRModelError):
    """Training data is missing, empty, or unreadable."""
