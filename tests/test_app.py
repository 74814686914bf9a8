"""End-to-end tests of the web demo: `app.py` in a subprocess, driven by `gradio_client`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio_client")
from demo_server import start_server
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from srmodel.images import read_image

MAX_MEGAPIXELS = 0.3  # small, so the "too large" test needs only a 700×700 image


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("demo"), "--max-megapixels", str(MAX_MEGAPIXELS))
    yield server
    server.stop()


@pytest.fixture
def client(server):
    """A fresh client, i.e. a fresh visitor session."""
    return Client(server.url, verbose=False, download_files=True)


def _save(tmp_path, name: str, array: np.ndarray, **kwargs) -> str:
    path = tmp_path / name
    Image.fromarray(array, **kwargs).save(path)
    return str(path)


def _photo(height: int = 48, width: int = 64, channels: int = 3) -> np.ndarray:
    """A smooth test image (gradients), so pixelation visibly changes it."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    planes = [np.sin(x / 5 + c) * np.cos(y / 7 - c) for c in range(channels)]
    return np.rint((np.stack(planes, axis=-1) * 0.5 + 0.5) * 255).astype(np.uint8)


def test_api_has_the_documented_endpoints(client):
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert set(endpoints) == {"/pixelate", "/enhance"}
    assert [p["parameter_name"] for p in endpoints["/pixelate"]["parameters"]] == ["image", "percent"]
    enhance_parameters = endpoints["/enhance"]["parameters"]
    assert [p["parameter_name"] for p in enhance_parameters] == ["image", "self_ensemble"]
    assert enhance_parameters[1]["parameter_has_default"] and enhance_parameters[1]["parameter_default"] is False


def test_pixelate_then_enhance_compares_with_the_original(client, tmp_path):
    original = _photo()
    path = _save(tmp_path, "photo.png", original)

    pixelated_path, metrics = client.predict(handle_file(path), 40, api_name="/pixelate")
    pixelated = read_image(pixelated_path)
    assert pixelated.shape == original.shape and pixelated.dtype == np.uint8
    assert not np.array_equal(pixelated, original)
    assert metrics["compared_with_original"] is True and metrics["percent"] == 40
    assert 0 < metrics["pixelated"]["psnr"] < 100 and -1 <= metrics["pixelated"]["ssim"] <= 1

    enhanced_path, metrics = client.predict(handle_file(path), api_name="/enhance")
    enhanced = read_image(enhanced_path)
    assert enhanced.shape == original.shape
    assert metrics["compared_with_original"] is True and metrics["self_ensemble"] is False
    assert set(metrics["enhanced"]) == {"psnr", "ssim"}
    # The test model returns its input, so it "enhanced" the pixelated image into itself.
    assert np.abs(enhanced.astype(int) - pixelated.astype(int)).max() <= 1

    # The self-ensemble turns the identity's 8 views back into place: still the pixelated image.
    enhanced_path, metrics = client.predict(handle_file(path), True, api_name="/enhance")
    assert metrics["self_ensemble"] is True and metrics["compared_with_original"] is True
    assert np.abs(read_image(enhanced_path).astype(int) - pixelated.astype(int)).max() <= 1


def test_self_ensemble_must_be_a_boolean(client, tmp_path):
    path = _save(tmp_path, "photo.png", _photo(16, 16))
    with pytest.raises(AppError, match="Self-ensemble must be true or false; got 'yes'"):
        client.predict(handle_file(path), "yes", api_name="/enhance")


def test_enhancing_an_own_photo_has_no_metrics(client, tmp_path):
    path = _save(tmp_path, "own.png", _photo(20, 30))
    enhanced_path, metrics = client.predict(handle_file(path), api_name="/enhance")
    assert read_image(enhanced_path).shape == (20, 30, 3)
    assert metrics["compared_with_original"] is False and "no original" in metrics["note"]


def test_rgba_keeps_alpha(client, tmp_path):
    rgba = _photo(30, 40, 4)
    rgba[:10, :, 3] = 0
    path = _save(tmp_path, "rgba.png", rgba, mode="RGBA")
    enhanced = read_image(client.predict(handle_file(path), api_name="/enhance")[0])
    assert enhanced.shape == (30, 40, 4)
    np.testing.assert_array_equal(enhanced[..., 3], rgba[..., 3])


@pytest.mark.parametrize("shape", [(33, 35), (1, 1), (3, 3)])
def test_gray_and_tiny_images_keep_their_shape(client, tmp_path, shape):
    gray = _photo(*shape, channels=1)[..., 0]
    path = _save(tmp_path, "gray.png", gray, mode="L")
    pixelated_path, _ = client.predict(handle_file(path), 40, api_name="/pixelate")
    assert read_image(pixelated_path).shape == shape
    enhanced = read_image(client.predict(handle_file(path), api_name="/enhance")[0])
    assert enhanced.shape == shape and enhanced.dtype == np.uint8


def test_16_bit_png_stays_16_bit(client, tmp_path):
    cv2 = pytest.importorskip("cv2")
    image = (_photo(24, 32).astype(np.uint16) * 257)[..., ::-1]  # cv2 writes BGR
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), image)
    enhanced = read_image(client.predict(handle_file(str(path)), api_name="/enhance")[0])
    assert enhanced.dtype == np.uint16 and enhanced.shape == (24, 32, 3)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"this is not an image", "not an image"), ("truncated", "corrupt or truncated")],
)
def test_bad_files_give_a_clear_error_and_the_app_keeps_serving(client, tmp_path, content, message):
    path = tmp_path / "broken.png"
    if content == "truncated":
        _save(tmp_path, "full.png", _photo(64, 64))
        content = (tmp_path / "full.png").read_bytes()[:2000]
    path.write_bytes(content)
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(path)), api_name="/enhance")
    ok = _save(tmp_path, "ok.png", _photo(8, 8))
    assert read_image(client.predict(handle_file(ok), api_name="/enhance")[0]).shape == (8, 8, 3)


def test_oversized_image_is_refused_with_the_limit(client, tmp_path):
    path = _save(tmp_path, "big.png", np.zeros((700, 700, 3), np.uint8))
    with pytest.raises(AppError, match=r"too large.*0\.3 megapixels"):
        client.predict(handle_file(path), 40, api_name="/pixelate")


def test_concurrent_enhance_calls_all_succeed(server, tmp_path):
    paths = [_save(tmp_path, f"c{i}.png", _photo(40 + i, 50)) for i in range(20)]

    def run(path: str) -> tuple[int, ...]:
        client = Client(server.url, verbose=False)
        return read_image(client.predict(handle_file(path), api_name="/enhance")[0]).shape

    with ThreadPoolExecutor(max_workers=20) as pool:
        shapes = list(pool.map(run, paths))
    assert shapes == [(40 + i, 50, 3) for i in range(20)]
    assert server.alive()


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width`×`height` pixels: a decompression bomb's signature."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding(client, tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming(50_000, 50_000))
    with pytest.raises(AppError, match="too large"):
        client.predict(handle_file(str(path)), api_name="/enhance")


@pytest.mark.parametrize("mode", ["P", "CMYK", "LA"])
def test_palette_cmyk_and_gray_alpha_uploads_work(client, tmp_path, mode):
    suffix = ".jpg" if mode == "CMYK" else ".png"
    path = tmp_path / f"mode{suffix}"
    Image.fromarray(_photo(20, 24)).convert(mode).save(path)
    enhanced = read_image(client.predict(handle_file(str(path)), api_name="/enhance")[0])
    assert enhanced.shape == {"P": (20, 24, 3), "CMYK": (20, 24, 3), "LA": (20, 24, 2)}[mode]
    assert enhanced.dtype == np.uint8


def test_exif_rotated_photo_is_upright(client, tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(_photo(20, 40)).save(path, exif=exif)
    enhanced = read_image(client.predict(handle_file(str(path)), api_name="/enhance")[0])
    assert enhanced.shape == (40, 20, 3)


def test_large_image_is_enhanced_in_tiles(client, tmp_path):
    # 200×1100 needs two of the tiny test model's 1024-pixel tiles and stays under the 0.3 MP test limit.
    path = _save(tmp_path, "large.png", _photo(200, 1100))
    pixelated_path, _ = client.predict(handle_file(path), 30, api_name="/pixelate")
    enhanced_path, metrics = client.predict(handle_file(path), api_name="/enhance")
    enhanced = read_image(enhanced_path)
    assert enhanced.shape == (200, 1100, 3)
    assert np.abs(enhanced.astype(int) - read_image(pixelated_path).astype(int)).max() <= 1
    assert metrics["region"] == "whole image"


def test_kill_stops_the_server_like_ctrl_c_and_removes_its_results(tmp_path):
    # `kill PID` (SIGTERM, also how a Space restarts) must run the exit clean-up of the results folder.
    temp_root = tmp_path / "tmp"
    temp_root.mkdir()
    server = start_server(tmp_path, env={"TMPDIR": str(temp_root)})
    try:
        client = Client(server.url, verbose=False, download_files=str(tmp_path / "downloads"))
        client.predict(handle_file(_save(tmp_path, "photo.png", _photo())), 40, api_name="/pixelate")
        assert list(temp_root.glob("srmodel-demo-*/*/photo*.png")), "the result should be in the demo's folder"
        server.process.terminate()
        assert server.process.wait(timeout=60) == 0, server.log()
    finally:
        server.stop()
    assert not list(temp_root.glob("srmodel-demo-*")), server.log()
