"""read_image/write_image: orientation, modes, 16-bit, alpha, and clean errors for bad files."""

from __future__ import annotations

import io
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from conftest import srgb_profile
from PIL import Image

from srmodel.errors import ImageError
from srmodel.images import read_image, write_image


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _gradient(height: int = 20, width: int = 30) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=2).astype(np.uint8)


def test_exif_rotated_jpeg_is_upright(tmp_path):
    # Stored 40 wide × 20 high with a bright left half; orientation 6 = rotate 90° clockwise to view.
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = 250
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    upright = read_image(path)
    assert upright.shape == (40, 20, 3)
    assert upright[:18].mean() > 200 and upright[22:].mean() < 50  # Left half is now on top.


def test_rgb16_png_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    for channels in (3, 4):
        image = rng.integers(0, 65536, (9, 13, channels), dtype=np.uint16)
        path = tmp_path / f"deep{channels}.png"
        write_image(path, image)
        back = read_image(path)
        assert back.dtype == np.uint16
        np.testing.assert_array_equal(back, image)
        # OpenCV's own decode agrees on channel order (we store RGB, it reports BGR).
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(raw[..., 2], image[..., 0])


def test_rgb16_tiff_and_gray16_png(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 65536, (6, 7, 3), dtype=np.uint16)
    write_image(tmp_path / "deep.tif", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "deep.tif"), rgb)
    gray = rng.integers(0, 65536, (6, 7), dtype=np.uint16)
    write_image(tmp_path / "gray.png", gray)
    back = read_image(tmp_path / "gray.png")
    assert back.dtype == np.uint16 and back.shape == (6, 7)
    np.testing.assert_array_equal(back, gray)


def test_cmyk_becomes_rgb():
    cmyk = Image.new("CMYK", (5, 4), (0, 255, 255, 0))  # Pure red in CMYK.
    buffer = io.BytesIO()
    cmyk.save(buffer, format="JPEG", quality=100)
    array = read_image(buffer.getvalue())
    assert array.shape == (4, 5, 3) and array.dtype == np.uint8
    assert array[..., 0].mean() > 200 and array[..., 1:].mean() < 60


def test_palette_with_and_without_transparency():
    palette = Image.fromarray(_gradient()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    assert read_image(_png_bytes(palette)).shape == (20, 30, 3)
    palette.info["transparency"] = 0
    with_alpha = read_image(_png_bytes(palette))
    assert with_alpha.shape == (20, 30, 4)
    assert set(np.unique(with_alpha[..., 3])) <= {0, 255} and with_alpha[..., 3].min() == 0


@pytest.mark.parametrize(
    ("mode", "shape"), [("1", (4, 5)), ("L", (4, 5)), ("LA", (4, 5, 2)), ("RGBA", (4, 5, 4)), ("I;16", (4, 5))]
)
def test_modes(mode, shape):
    array = read_image(Image.new(mode, (5, 4)))
    assert array.shape == shape
    assert array.dtype == (np.uint16 if mode == "I;16" else np.uint8)


def _tiff(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="TIFF")
    return buffer.getvalue()


def test_float_tiff_in_unit_range_reads_as_16_bit():
    ramp = np.linspace(0.0, 1.0, 12, dtype=np.float32).reshape(3, 4)
    array = read_image(_tiff(ramp))
    assert array.dtype == np.uint16
    np.testing.assert_array_equal(array, np.rint(ramp * 65535).astype(np.uint16))


@pytest.mark.parametrize(("array", "message"), [
    (np.array([[0.0, 3.0]], np.float32), r"float pixels must lie in \[0, 1\]. Received: values 0..3"),
    (np.array([[0.0, np.nan]], np.float32), "float pixels must lie in"),
    (np.array([[0, 255000]], np.int32), r"outside 0..65535 are not supported .* Received: values 0..255000"),
])
def test_wide_pixels_without_a_known_white_are_refused_not_clipped(array, message):
    with pytest.raises(ImageError, match=message):
        read_image(_tiff(array))


def test_truncated_png(tmp_path):
    data = _png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        read_image(path)


def test_truncated_16bit_png():
    data = cv2.imencode(".png", np.random.default_rng(0).integers(0, 65536, (32, 32, 3), dtype=np.uint16))[1]
    with pytest.raises(ImageError, match="truncated"):
        read_image(data.tobytes()[:300])


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("hello, not a picture\n")
    with pytest.raises(ImageError, match="not an image"):
        read_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        read_image(tmp_path / "nope.png")


def _png(width: int, height: int, bit_depth: int, color_type: int, raw: bytes) -> bytes:
    """A hand-made PNG (Pillow and OpenCV cannot write every kind, nor lie about the size)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming `width`×`height`, followed by a tiny (truncated) data stream."""
    return _png(width, height, 8, 2, b"\0" * 64)


def test_gray_alpha_16bit_png_keeps_16_bits():
    gray_alpha = np.random.default_rng(2).integers(0, 65536, (3, 4, 2), dtype=np.uint16)
    raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in gray_alpha)
    array = read_image(_png(4, 3, 16, 4, raw))
    assert array.shape == (3, 4, 4) and array.dtype == np.uint16
    np.testing.assert_array_equal(array[..., 0], gray_alpha[..., 0])
    np.testing.assert_array_equal(array[..., 3], gray_alpha[..., 1])


@pytest.mark.parametrize("size", [(100_000, 100_000), (8000, 6000)])
def test_decompression_bomb_rejected_from_header(size):
    start = time.perf_counter()
    with pytest.raises(ImageError, match="too large"):
        read_image(_bomb_png(*size))
    assert time.perf_counter() - start < 1.0


def test_max_pixels_is_checked():
    data = _png_bytes(Image.new("RGB", (50, 40)))
    assert read_image(data, max_pixels=2000).shape == (40, 50, 3)
    with pytest.raises(ImageError, match="2,001 pixels|limit of 1,999"):
        read_image(data, max_pixels=1999)


def test_warnings_do_not_crash():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Above Pillow's DecompressionBombWarning threshold would warn; our own limit answers first.
        with pytest.raises(ImageError):
            read_image(_bomb_png(15_000, 15_000), max_pixels=300_000_000)


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "bmp", "tif"])
def test_write_formats(tmp_path, ext):
    image = _gradient()
    path = tmp_path / "sub" / f"out.{ext}"
    write_image(path, image)
    with Image.open(path) as written:
        assert written.format == {"jpg": "JPEG", "tif": "TIFF"}.get(ext, ext.upper())
    back = read_image(path)
    assert back.shape == image.shape
    assert np.abs(back.astype(int) - image).mean() < 4
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # No temporary file left behind.


def test_alpha_kept_or_dropped(tmp_path):
    rgba = np.dstack([_gradient(), np.full((20, 30), 128, np.uint8)])
    write_image(tmp_path / "a.png", rgba)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgba)
    write_image(tmp_path / "a.jpg", rgba)
    back = read_image(tmp_path / "a.jpg")
    assert back.shape == (20, 30, 3)
    expected = np.rint(rgba[..., :3] * (128 / 255) + 255 * (127 / 255))
    assert np.abs(back - expected).mean() < 4  # Composited onto white.


def test_gray_alpha_stays_gray_where_the_format_has_alpha(tmp_path):
    gray_alpha = np.dstack([_gradient()[..., 0], np.full((20, 30), 128, np.uint8)])
    write_image(tmp_path / "a.png", gray_alpha)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), gray_alpha)
    write_image(tmp_path / "a.tif", gray_alpha)
    np.testing.assert_array_equal(read_image(tmp_path / "a.tif"), gray_alpha)
    write_image(tmp_path / "a.bmp", gray_alpha)
    expected = np.rint(gray_alpha[..., 0] * (128 / 255) + 255 * (127 / 255))
    np.testing.assert_array_equal(read_image(tmp_path / "a.bmp"), expected)  # Composited onto white.
    write_image(tmp_path / "a.webp", gray_alpha)
    assert read_image(tmp_path / "a.webp").shape == (20, 30, 4)  # WebP has no gray.
    deep = np.random.default_rng(3).integers(0, 65536, (5, 6, 2), dtype=np.uint16)
    write_image(tmp_path / "deep.png", deep)
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png"), deep[..., [0, 0, 0, 1]])


def test_gray_with_a_transparent_shade_reads_as_gray_alpha():
    gray = Image.fromarray(_gradient()[..., 0])
    gray.info["transparency"] = int(np.asarray(gray)[0, 0])
    array = read_image(_png_bytes(gray))
    assert array.shape == (20, 30, 2) and array[0, 0, 1] == 0 and array[..., 1].max() == 255


def test_write_float_and_gray(tmp_path):
    write_image(tmp_path / "f.png", np.full((3, 4, 1), 0.5))
    back = read_image(tmp_path / "f.png")
    assert back.shape == (3, 4) and back.dtype == np.uint8 and back[0, 0] == 128


def test_write_unknown_extension(tmp_path):
    with pytest.raises(ValueError, match="Received: path="):
        write_image(tmp_path / "out.xyz", _gradient())
    write_image(tmp_path / "out", _gradient(), like="photo.png")
    assert read_image(tmp_path / "out").shape == (20, 30, 3)


@pytest.mark.parametrize(("suffix", "dtype", "kept"), [
    (".png", np.uint8, True), (".png", np.uint16, True), (".jpg", np.uint8, True), (".webp", np.uint8, True),
    (".tif", np.uint8, True), (".bmp", np.uint8, False), (".tif", np.uint16, False),
])
def test_colour_profile_is_written_where_the_format_holds_one(tmp_path, suffix, dtype, kept):
    from srmodel.images import read_icc_profile

    image = (np.random.default_rng(1).integers(0, 256, (10, 12, 3)) * (257 if dtype == np.uint16 else 1)).astype(dtype)
    write_image(tmp_path / f"a{suffix}", image, icc_profile=srgb_profile())
    assert read_icc_profile(tmp_path / f"a{suffix}") == (srgb_profile() if kept else None)
    if suffix == ".png":  # The 16-bit PNG gets its iCCP chunk spliced in: the pixels must survive that.
        np.testing.assert_array_equal(read_image(tmp_path / "a.png"), image)


def test_a_profile_of_another_colour_space_is_left_out(tmp_path):
    from srmodel.images import read_icc_profile

    gray = np.zeros((6, 7), np.uint8)
    write_image(tmp_path / "gray.png", gray, icc_profile=srgb_profile())  # an RGB profile on gray pixels
    assert read_icc_profile(tmp_path / "gray.png") is None
    cmyk_like = srgb_profile()[:16] + b"CMYK" + srgb_profile()[20:]  # e.g. a CMYK JPEG's, read as RGB
    write_image(tmp_path / "rgb.png", np.zeros((6, 7, 3), np.uint8), icc_profile=cmyk_like)
    assert read_icc_profile(tmp_path / "rgb.png") is None
    assert read_icc_profile(b"not an image") is None


def test_jpeg_results_keep_full_colour_resolution(tmp_path):
    from PIL import JpegImagePlugin

    write_image(tmp_path / "a.jpg", np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    with Image.open(tmp_path / "a.jpg") as image:
        assert JpegImagePlugin.get_sampling(image) == 0  # 4:4:4, no chroma subsampling


def test_big_endian_arrays_are_written_as_their_values(tmp_path):
    image = np.full((4, 5, 3), 20000, np.uint16)
    write_image(tmp_path / "a.png", image.astype(">u2"))
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), image)


def test_a_gray_profile_stays_out_of_a_webp_which_has_no_gray(tmp_path):
    from srmodel.images import read_icc_profile

    gray_profile = srgb_profile()[:16] + b"GRAY" + srgb_profile()[20:]
    write_image(tmp_path / "a.webp", np.zeros((6, 7, 2), np.uint8), icc_profile=gray_profile)
    assert read_icc_profile(tmp_path / "a.webp") is None
    write_image(tmp_path / "a.png", np.zeros((6, 7, 2), np.uint8), icc_profile=gray_profile)
    assert read_icc_profile(tmp_path / "a.png") == gray_profile


def test_a_raised_pixel_limit_is_not_undercut_by_pillows_own():
    header = _bomb_png(14000, 14000)  # 196 MP: over twice Pillow's default bomb limit
    with pytest.raises(ImageError, match="too large"):  # by default refused (Pillow's own bomb check may answer first)
        read_image(header)
    with pytest.raises(ImageError, match="corrupt or truncated"):  # past every size check, to the missing pixels
        read_image(header, max_pixels=300_000_000)


def test_reading_on_many_threads_leaves_the_warning_filters_as_they_were():
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buffer, format="PNG")
    before = list(warnings.filters)
    with ThreadPoolExecutor(8) as pool:  # as the training scan decodes
        list(pool.map(lambda _: read_image(buffer.getvalue()), range(2000)))
    assert warnings.filters == before
