"""Reading and writing image files for the CLI and the web demo.

`read_image` returns what `Enhancer.enhance` accepts: uint8 or uint16 arrays, H×W gray, H×W×2 gray
with alpha, H×W×3 RGB or H×W×4 RGBA, upright (EXIF orientation applied). 16-bit files keep 16 bits, including 16-bit
RGB(A) PNG/TIFF, which Pillow would silently reduce to 8 bits (OpenCV decodes those).
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import threading
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from srmodel.errors import ImageError
from srmodel.folder import atomic_write_bytes

DEFAULT_MAX_PIXELS = 40_000_000

# File extension -> Pillow format name. Also the set of files the CLI picks up from folders.
FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
SIXTEEN_BIT_FORMATS = {"PNG", "TIFF"}
ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}

_GRAY_MODES = {"1", "L"}
_UINT16_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
_TO_RGB_MODES = {"CMYK", "YCbCr", "LAB", "HSV", "RGBX"}
_GRAY_ALPHA_MODES = {"LA", "La"}
_TO_RGBA_MODES = {"PA", "RGBa"}
_ORIENTATION_TAG = 0x0112


def _describe(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__}>"


def _open(source, name: str) -> Image.Image:
    """Opens lazily (header only) and converts every Pillow failure into `ImageError`."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"File not found: {path}")
    else:
        raise ImageError(f"Expected a path, bytes or PIL image. Received: type={type(source).__name__}")
    try:
        return Image.open(source)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: image is too large to open safely ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file, or a format this build cannot read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: cannot read image header ({exc})") from None


def _is_16bit_color(image: Image.Image) -> bool:
    """True for RGB(A) files stored with 16 bits per channel (Pillow would decode them as 8-bit)."""
    if image.mode not in ("RGB", "RGBA", "LA"):
        return False
    for tile in getattr(image, "tile", None) or []:
        args = tile.args if hasattr(tile, "args") else tile[3]
        rawmode = args if isinstance(args, str) else (args[0] if isinstance(args, tuple) and args else "")
        if isinstance(rawmode, str) and ";16" in rawmode:
            return True
    return False


def _orient_array(array: np.ndarray, orientation: int) -> np.ndarray:
    """Applies an EXIF orientation (1-8) to an H×W[×C] array, like `ImageOps.exif_transpose`."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(array)) if op else array


def _decode_16bit_color(image: Image.Image, source, name: str) -> np.ndarray:
    """Decodes a 16-bit RGB(A) file with OpenCV, returning uint16 RGB(A), upright."""
    if isinstance(source, (str, os.PathLike)):
        data = Path(source).read_bytes()
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:  # A PIL image from a file object: read the file it came from, if any.
        fp = getattr(image, "fp", None)
        if fp is None:
            raise ImageError(f"{name}: 16-bit colour image without its file data; pass a path or bytes")
        fp.seek(0)
        data = fp.read()
    array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageError(f"{name}: the 16-bit image is corrupt or truncated")
    code = cv2.COLOR_BGRA2RGBA if array.shape[2] == 4 else cv2.COLOR_BGR2RGB
    array = cv2.cvtColor(array, code)
    if array.dtype != np.uint16:  # e.g. a TIFF OpenCV decoded differently than its header said.
        array = array.astype(np.uint16) * 257 if array.dtype == np.uint8 else array.astype(np.uint16)
    return _orient_array(array, _orientation(image))


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001  (malformed EXIF is not worth failing a read for)
        return 1


def _to_array(image: Image.Image, name: str) -> np.ndarray:
    """Maps a decoded, upright PIL image to uint8/uint16 gray, uint8 gray with alpha, RGB or RGBA."""
    mode = image.mode
    has_alpha = mode in ("P", "L", "RGB") and image.has_transparency_data
    if mode in _UINT16_MODES:
        array = np.asarray(image)
        # "I" is 32-bit integer pixels: 16-bit PNGs in older Pillow, or 32-bit TIFFs, whose scale we cannot know.
        if mode == "I" and array.size and (array.min() < 0 or array.max() > 65535):
            raise ImageError(f"{name}: 32-bit integer pixels outside 0..65535 are not supported (no known white "
                             f"level). Received: values {array.min()}..{array.max()}")
        return array.astype(np.uint16)
    if mode == "F":  # 32-bit float pixels (scientific TIFFs): white is 1.0 by convention.
        array = np.asarray(image, dtype=np.float32)
        if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
            raise ImageError(f"{name}: 32-bit float pixels must lie in [0, 1]. "
                             f"Received: values {np.nanmin(array):g}..{np.nanmax(array):g}")
        return np.rint(array * 65535.0).astype(np.uint16)
    if mode in _GRAY_MODES and not has_alpha:
        return np.asarray(image.convert("L"), dtype=np.uint8)
    if mode in _GRAY_ALPHA_MODES or (mode == "L" and has_alpha):
        return np.asarray(image.convert("LA"), dtype=np.uint8)
    if mode in ("RGBA",) or mode in _TO_RGBA_MODES or has_alpha:
        return np.asarray(image.convert("RGBA"), dtype=np.uint8)
    if mode in ("RGB", "P") or mode in _TO_RGB_MODES:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    raise ImageError(
        f"{name}: unsupported image mode. Expected 8/16-bit gray, palette, RGB(A), CMYK, YCbCr or LAB. "
        f"Received: mode={mode!r}"
    )


_QUIET_LOCK = threading.Lock()
_quiet: list = []  # [the shared catch_warnings context, how many callers are inside it]


@contextlib.contextmanager
def _pillow_warnings_ignored():
    """`warnings.catch_warnings`, safe when threads overlap (the training scan decodes on a thread pool).

    Each plain catch_warnings restores the filters it found on entry, so overlapping ones in two threads can
    leave warnings switched off for the whole process. Here the first caller in saves the filters and the
    last one out restores them.
    """
    with _QUIET_LOCK:
        if not _quiet:
            context = warnings.catch_warnings()
            context.__enter__()
            warnings.simplefilter("ignore")
            _quiet[:] = [context, 0]
        _quiet[1] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _quiet[1] -= 1
            if _quiet[1] == 0:
                _quiet.pop(0).__exit__(None, None, None)
                _quiet.clear()


def read_image(
    source: str | os.PathLike | bytes | Image.Image, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Reads an image file, bytes or PIL image as an upright uint8/uint16 gray, RGB or RGBA array.

    Raises `ImageError` for anything that is not a readable image, is truncated, or has more than
    `max_pixels` pixels (checked from the header, before any pixel is decoded).
    """
    name = _describe(source)
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        # Pillow refuses images over twice its own limit at open; ours, checked from the header below, decides.
        Image.MAX_IMAGE_PIXELS = max_pixels
    # Pillow warnings (EXIF oddities, DecompressionBombWarning, palette notes) must never become
    # errors under `-W error`; real problems surface as exceptions below.
    with _pillow_warnings_ignored():
        image = _open(source, name)
        try:
            width, height = image.size
            if width < 1 or height < 1:
                raise ImageError(f"{name}: image has no pixels. Received: size={width}×{height}")
            if width * height > max_pixels:
                raise ImageError(
                    f"{name}: image is too large: {width}×{height} = {width * height:,} pixels, "
                    f"more than the limit of {max_pixels:,}"
                )
            if _is_16bit_color(image):
                return _decode_16bit_color(image, source, name)
            try:
                image.load()
            except Image.DecompressionBombError as exc:
                raise ImageError(f"{name}: image is too large to decode safely ({exc})") from None
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                raise ImageError(f"{name}: image data is corrupt or truncated ({exc})") from None
            try:
                upright = ImageOps.exif_transpose(image)
            except Exception:  # noqa: BLE001  (malformed EXIF: keep the pixels as stored)
                upright = image
            return _to_array(upright, name)
        finally:
            if not isinstance(source, Image.Image):
                image.close()


def read_icc_profile(source: str | os.PathLike | bytes) -> bytes | None:
    """The embedded colour profile (ICC) of an image file, or None.

    Pixels are restored in the colour space they were stored in, so a result must carry the same profile
    to look the same: a Display P3 phone photo written without it looks washed out in colour-managed viewers.
    """
    try:
        with _pillow_warnings_ignored(), _open(source, _describe(source)) as image:
            profile = image.info.get("icc_profile")
    except ImageError:
        return None
    return bytes(profile) if profile else None


def _profile_fits(profile: bytes | None, array: np.ndarray, fmt: str) -> bool:
    """True when the ICC profile's colour space (header bytes 16-19) is that of the file to write: RGB or gray.

    A CMYK JPEG's profile must not travel to the RGB array it was converted to, nor a gray one into a WebP
    (which has no gray: Pillow writes gray as RGB(A) there).
    """
    if not profile or len(profile) < 20:
        return False
    gray = (array.ndim == 2 or array.shape[2] <= 2) and fmt != "WEBP"
    return profile[16:20] == (b"GRAY" if gray else b"RGB ")


def _png_with_icc(png: bytes, profile: bytes) -> bytes:
    """Inserts an iCCP chunk after IHDR (OpenCV's 16-bit PNGs cannot carry one otherwise)."""
    body = b"ICC profile\0\0" + zlib.compress(profile)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    ihdr_end = 8 + 4 + 4 + 13 + 4  # signature, then IHDR's length, type, 13 data bytes and CRC
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def to_rgb8(array: np.ndarray) -> np.ndarray:
    """A `read_image` array as uint8 RGB H×W×3: 16-bit reduced to 8, gray repeated, and alpha composited onto
    white, so pixels no one can see (often black or noise under full transparency) are not taken for content."""
    array = _to_8bit(np.asarray(array))
    if array.ndim == 3 and array.shape[2] in (2, 4):
        array = _drop_alpha_onto_white(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return np.ascontiguousarray(array)


def _to_8bit(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return np.rint(array.astype(np.float32) / 257.0).astype(np.uint8)
    return np.rint(np.clip(array.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def _drop_alpha_onto_white(array: np.ndarray) -> np.ndarray:
    """Composites uint8 gray+alpha or RGBA over white (for formats without alpha, i.e. JPEG and BMP)."""
    color = array[..., :-1].astype(np.float32)
    alpha = array[..., -1:].astype(np.float32) / 255.0
    out = np.rint(color * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return out[..., 0] if out.shape[2] == 1 else out


def _format_for(path: Path, like: str | None) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None and like is not None:
        suffix = Path(like).suffix or f".{like.lstrip('.')}"
        fmt = FORMATS.get(suffix.lower())
    if fmt is None:
        raise ValueError(
            f"Cannot tell the image format from the file name. Expected one of {sorted(FORMATS)}. "
            f"Received: path={str(path)!r}, like={like!r}"
        )
    return fmt


def encode_image(array: np.ndarray, fmt: str, *, icc_profile: bytes | None = None) -> bytes:
    """Encodes an H×W, H×W×1, H×W×2 (gray, alpha), H×W×3 or H×W×4 uint8/uint16/float array in Pillow format `fmt`.

    `icc_profile` (see `read_icc_profile`) is embedded where the format holds one (not BMP, not 16-bit TIFF)
    and its colour space matches the array's; otherwise it is left out.
    """
    array = np.asarray(array)
    if not array.dtype.isnative:  # '>u2' would not compare equal to uint16 below and be taken for float
        array = array.astype(array.dtype.newbyteorder("="))
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.size == 0 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (2, 3, 4))):
        raise ValueError(
            "Expected a non-empty H×W, H×W×1, H×W×2, H×W×3 or H×W×4 image. "
            f"Received: shape={array.shape}, dtype={array.dtype}"
        )
    if array.dtype == np.uint16 and fmt in SIXTEEN_BIT_FORMATS and array.ndim == 3 and array.shape[2] == 2:
        array = array[..., [0, 0, 0, 1]]  # No 16-bit gray+alpha encoder: 16-bit RGBA keeps every bit.
    if array.dtype == np.uint16 and fmt in SIXTEEN_BIT_FORMATS:
        # OpenCV writes 16-bit gray, RGB and RGBA PNG/TIFF; Pillow only 16-bit gray.
        bgr = array
        if array.ndim == 3:
            bgr = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA if array.shape[2] == 4 else cv2.COLOR_RGB2BGR)
        ok, buffer = cv2.imencode(".png" if fmt == "PNG" else ".tiff", bgr)
        if not ok:
            raise ValueError(f"OpenCV could not encode a 16-bit {fmt}. Received: shape={array.shape}")
        if fmt == "PNG" and _profile_fits(icc_profile, array, fmt):
            return _png_with_icc(buffer.tobytes(), icc_profile)
        return buffer.tobytes()
    array = _to_8bit(array)
    if array.ndim == 3 and array.shape[2] in (2, 4) and fmt not in ALPHA_FORMATS:
        array = _drop_alpha_onto_white(array)
    # JPEG without chroma subsampling (4:4:4): halving colour resolution would undo part of the restoration.
    options = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"quality": 95}, "PNG": {"optimize": False}}.get(fmt, {})
    if fmt != "BMP" and _profile_fits(icc_profile, array, fmt):
        options = {**options, "icc_profile": icc_profile}
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def write_image(
    path: str | os.PathLike, array: np.ndarray, *, like: str | None = None, icc_profile: bytes | None = None
) -> None:
    """Writes `array` atomically (temporary file + rename) in the format of `path`'s extension.

    `like` (a file name or extension such as ".png") gives the format when `path` has no known
    extension. uint16 is kept as 16-bit in PNG and TIFF and reduced to 8 bits elsewhere; float is
    written as 8-bit. Alpha is kept in PNG, WebP and TIFF (WebP has no gray: gray+alpha becomes RGBA
    there); JPEG and BMP are written without it, composited onto white. `icc_profile`: see `encode_image`.
    """
    path = Path(path)
    atomic_write_bytes(path, encode_image(array, _format_for(path, like), icc_profile=icc_profile))
