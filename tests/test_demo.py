"""Unit tests of the demo's logic that need no server: model fallback, panels, settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("gradio")
from srmodel import demo
from srmodel.errors import ModelLoadError

METRICS = {"validation": {"percent": 40, "model": {"psnr": 30.5, "ssim": 0.9},
                          "pixelated": {"psnr": 27.0, "ssim": 0.8}, "bicubic": {"psnr": 28.0, "ssim": 0.85}}}


class FakeEnhancer:
    """Stands in for `Enhancer`: returns its input, reports where it came from."""

    def __init__(self, info: dict, config: dict | None = None):
        self.info = {"architecture": "default", "metrics": METRICS, **info}
        self.config = config or {"pixelation": {"percent_range": [25, 55], "validation_percent": 40}}

    def enhance(self, image: np.ndarray, progress=None, *, self_ensemble: bool = False) -> np.ndarray:
        return image.copy()


@pytest.fixture
def fake_hub(monkeypatch):
    """load_enhancer that serves the bundled model and fails for every Hub repo."""
    import srmodel.hub

    def load_enhancer(source=None, precision=None):
        if source is None:
            return FakeEnhancer({"source": "bundled", "path": "bundled"})
        raise ModelLoadError(f"Could not reach the Hugging Face Hub while downloading {source}")

    monkeypatch.setattr(srmodel.hub, "load_enhancer", load_enhancer)


def test_unreachable_model_falls_back_to_bundled_with_a_notice(fake_hub):
    serving = demo.load_serving_model("alice/pixel-fixer")
    assert serving.enhancer.info["source"] == "bundled"
    assert "alice/pixel-fixer" in serving.notice and "bundled default" in serving.notice


def test_the_fallback_notice_keeps_our_message_whole_and_cuts_others_between_words(monkeypatch):
    import srmodel.hub

    link = "https://huggingface.co/settings/tokens"
    ours = "Model alice/x was not found on the Hub, or it is private. " + "Check the name. " * 20 + f"See {link})."
    theirs = "word " * 200

    def load_enhancer(source=None, precision=None):
        if source is None:
            return FakeEnhancer({"source": "bundled", "path": "bundled"})
        raise ModelLoadError(ours) if source == "alice/x" else RuntimeError(theirs)

    monkeypatch.setattr(srmodel.hub, "load_enhancer", load_enhancer)
    notice = demo.load_serving_model("alice/x").notice
    assert f"({ours}). Serving the bundled default model instead." in notice and "ModelLoadError" not in notice
    notice = demo.load_serving_model("alice/y").notice
    assert "(RuntimeError: word word" in notice and notice.endswith("word …). Serving the bundled default model instead.")
    assert len(notice) < 700


def test_no_fallback_notice_for_the_default_model(fake_hub):
    assert demo.load_serving_model(None).notice is None


def test_fallback_failure_names_both_problems(monkeypatch):
    import srmodel.hub

    def broken(source=None, precision=None):
        raise ModelLoadError("bundled model is missing" if source is None else "hub is down")

    monkeypatch.setattr(srmodel.hub, "load_enhancer", broken)
    with pytest.raises(ModelLoadError, match="hub is down.*bundled model is missing"):
        demo.load_serving_model("alice/pixel-fixer")


def test_page_shows_the_notice_and_the_model(fake_hub):
    serving = demo.load_serving_model("alice/pixel-fixer")
    config = json.dumps(demo.build_demo(serving, max_megapixels=12).get_config_file(), default=str)
    assert "Serving the bundled default model instead" in config
    assert "Images up to 12 megapixels" in config
    assert "30.50" in config  # the model's validation PSNR in the model panel


def test_model_origin_names_hub_repo_and_revision(monkeypatch):
    from huggingface_hub import constants

    info = {"source": "hub", "repo_id": "alice/pixel-fixer", "revision": "0123abc"}
    assert "`alice/pixel-fixer@0123abc`" in demo.model_origin(info)
    monkeypatch.setattr(constants, "ENDPOINT", "http://hub.example:8080/")  # HF_ENDPOINT: link to that Hub
    assert "(http://hub.example:8080/alice/pixel-fixer)" in demo.model_origin(info)
    assert "local folder `/models/x`" in demo.model_origin({"source": "local", "path": "/models/x"})


def test_model_markdown_without_metrics_says_so():
    assert "No validation metrics" in demo.model_markdown({"architecture": "default", "metrics": {}})


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"pixelation": {"percent_range": [25, 55], "validation_percent": 40}}, (25, 55, 40)),
        ({"pixelation": {"percent_range": [45, 60]}}, (45, 60, 45)),  # default clamped into range
        ({}, (20, 60, 40)),
        ({"pixelation": {"percent_range": "bad"}}, (20, 60, 40)),
    ],
)
def test_percent_settings(config, expected):
    assert demo.percent_settings(config) == expected


def test_metrics_markdown_explains_missing_original():
    text = demo.metrics_markdown({"metrics": {"compared_with_original": False}})
    assert "No original to compare with" in text


def test_as_unit_float_drops_alpha_and_scales():
    rgba = np.full((2, 2, 4), 65535, np.uint16)
    out = demo.as_unit_float(rgba)
    assert out.shape == (2, 2, 3) and out.dtype == np.float32 and np.allclose(out, 1.0)


def test_app_precision_option(monkeypatch, capsys):
    import app

    monkeypatch.delenv("SRMODEL_PRECISION", raising=False)
    assert app.parse_args([]).precision == "auto"
    monkeypatch.setenv("SRMODEL_PRECISION", "float32")
    assert app.parse_args([]).precision == "float32"
    assert app.parse_args(["--precision", "bfloat16"]).precision == "bfloat16"  # the flag wins
    monkeypatch.setenv("SRMODEL_PRECISION", "half")
    with pytest.raises(SystemExit) as exit_info:
        app.parse_args([])
    assert exit_info.value.code == 2
    assert "--precision must be auto, float32 or bfloat16, got 'half'" in capsys.readouterr().err


def test_a_busy_port_is_refused_before_the_model_loads(monkeypatch, capsys):
    import socket

    import app

    monkeypatch.setattr(demo, "load_serving_model", lambda *args: pytest.fail("the model must not load"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert app.main(["--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"error: cannot listen on 127.0.0.1:{port}" in err and "pass --port" in err
    assert app.port_problem("127.0.0.1", port) is None  # Free again once the other server has gone.
    with pytest.raises(SystemExit):
        app.parse_args(["--port", "70000"])
    assert "--port (or GRADIO_SERVER_PORT) must be in 1..65535, got 70000" in capsys.readouterr().err


def test_metrics_of_a_thin_image_name_the_region_compared():
    original = np.zeros((20, 5000, 3), np.uint8)
    metrics = demo.compare(original, same=original)
    assert metrics["region"] == f"central {demo.METRICS_MAX_SIDE}×20 crop"


def test_error_messages_escape_html_but_keep_quotes():
    with pytest.raises(demo.gr.Error) as error:
        demo._check_percent("<b>'abc'</b>")
    assert error.value.message == "Pixelation must be a percentage in (0, 100]; got \"&lt;b&gt;'abc'&lt;/b&gt;\"."
    with pytest.raises(demo.gr.Error):
        demo._check_percent(True)


def test_model_panel_names_the_compute_precision():
    text = demo.model_markdown({"source": "bundled", "architecture": "default", "precision": "bfloat16"})
    assert "**Compute precision:** bfloat16" in text


def test_results_keep_the_uploads_colour_profile(tmp_path):
    from conftest import srgb_profile
    from PIL import Image

    from srmodel.images import read_icc_profile

    profile = srgb_profile()
    photo = tmp_path / "wide gamut.jpg"
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(photo, icc_profile=profile)
    handlers = demo.DemoHandlers(FakeEnhancer({}), max_pixels=10**6, outputs=demo.OutputDir(tmp_path / "out"))
    pixelated, _, state = handlers.pixelate(str(photo), 40, None)
    enhanced, _, _ = handlers.enhance(str(photo), False, state)
    direct, _, _ = handlers.enhance(str(photo), False, None)
    assert read_icc_profile(pixelated) == read_icc_profile(enhanced) == read_icc_profile(direct) == profile


def _handlers(tmp_path):
    return demo.DemoHandlers(FakeEnhancer({}), max_pixels=10**6, outputs=demo.OutputDir(tmp_path / "out"))


def _photo_file(tmp_path, name: str, value: int = 90) -> str:
    from PIL import Image

    y, x = np.mgrid[0:24, 0:32]
    Image.fromarray(((x * 7 + y * 3 + value) % 256).astype(np.uint8)).convert("RGB").save(tmp_path / name)
    return str(tmp_path / name)


def test_a_result_for_an_image_no_longer_on_the_page_is_dropped(tmp_path):
    handlers = _handlers(tmp_path)
    first, second = _photo_file(tmp_path, "a.png"), _photo_file(tmp_path, "b.png", value=10)
    _, _, state = handlers.pixelate(first, 40, None)
    session, slider, input_view, *_ = demo.render_views(state, {"path": first})
    assert session == state and input_view.label == "Pixelated (model input)"
    # The visitor picked b.png while a.png's job ran: nothing of a.png is shown beside it, and the session resets.
    session, slider, input_view, enhanced, metrics, _ = demo.render_views(state, {"path": second})
    assert session is None and slider is None and enhanced is None and metrics == ""
    assert input_view.value is None and input_view.label == "Model input"
    assert demo.render_views(state, None)[0] is None  # ... or cleared it


def test_moving_the_slider_after_pixelate_pixelates_again(tmp_path):
    handlers = _handlers(tmp_path)
    photo = _photo_file(tmp_path, "a.png")
    _, _, state = handlers.pixelate(photo, 40, None)
    path, metrics, moved = handlers.repixelate(photo, 25, state)
    assert moved["percent"] == 25 and metrics["percent"] == 25 and moved["enhanced"] is None
    assert handlers.repixelate(photo, 25, moved) == (demo.gr.skip(),) * 3  # same level: nothing to do
    assert handlers.repixelate(photo, 30, None) == (demo.gr.skip(),) * 3  # not pixelated yet: nothing to do
    other = _photo_file(tmp_path, "b.png", value=10)
    assert handlers.repixelate(other, 30, moved) == (demo.gr.skip(),) * 3  # another image: its own Pixelate


def test_uploads_are_checked_at_once_and_tiff_is_shown_as_png(tmp_path):
    from PIL import Image

    from srmodel.images import read_image

    handlers = _handlers(tmp_path)
    assert handlers.show_upload(_photo_file(tmp_path, "a.png")) == demo.gr.skip()  # browsers show PNG as is
    tiff = tmp_path / "scan.tif"
    Image.open(_photo_file(tmp_path, "b.png")).save(tiff)
    shown = handlers.show_upload(str(tiff))
    assert shown.endswith("scan.png")
    np.testing.assert_array_equal(read_image(shown), read_image(tiff))
    (tmp_path / "holiday.png").write_bytes(b"not an image")
    with pytest.raises(demo.gr.Error, match="holiday.png: not an image file"):
        handlers.show_upload(str(tmp_path / "holiday.png"))
