"""`python -m srmodel enhance`: folders, structure, formats, bad files, exit codes."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from srmodel import cli_enhance, pixelate
from srmodel.errors import ModelLoadError
from srmodel.images import read_image, write_image


class FakeEnhancer:
    """Stands in for the model: inverts the image, so outputs are easy to check and instant."""

    def __init__(self):
        self.tile_size = 1024  # what the model chose; the CLI keeps it unless told otherwise
        self.tile_margin = 88
        self.config = {"pixelation": {"percent_range": [20, 60]}}

    def enhance(self, image: np.ndarray, progress=None, *, self_ensemble: bool = False) -> np.ndarray:
        self.self_ensemble = self_ensemble
        out = np.iinfo(image.dtype).max - image
        if image.ndim == 3 and image.shape[2] == 4:
            out[..., 3] = image[..., 3]
        return out


@pytest.fixture
def fake(monkeypatch):
    enhancer = FakeEnhancer()
    loaded = []

    def load(source, precision=None):
        loaded.append(source)
        enhancer.precision = precision
        return enhancer

    monkeypatch.setattr(cli_enhance, "_load_enhancer", load)
    enhancer.loaded = loaded
    return enhancer


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="srmodel")
    cli_enhance.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["enhance", *argv])
    return args.func(args)


def _image(seed: int, shape=(12, 16, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_folder_with_corrupt_file(tmp_path, fake, capsys):
    src = tmp_path / "in"
    write_image(src / "a.png", _image(0))
    write_image(src / "sub" / "deeper" / "b.JPG", _image(1))
    write_image(src / "sub" / "c.png", _image(2, (12, 16, 4)))
    (src / "sub" / "broken.png").write_bytes(b"not really a png")
    (src / "notes.txt").write_text("ignored: not an image extension")
    out = tmp_path / "out"

    code = run([str(src), "--out", str(out), "--model", "some/model", "--tile-size", "64"])

    assert code == 1
    captured = capsys.readouterr()
    assert "skipped: " in captured.err and "broken.png" in captured.err
    assert "3 enhanced, 1 skipped" in captured.out
    assert fake.loaded == ["some/model"] and fake.tile_size == 64
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a.png", "sub/c.png", "sub/deeper/b.JPG"]
    np.testing.assert_array_equal(read_image(out / "a.png"), 255 - _image(0))
    rgba = read_image(out / "sub" / "c.png")
    assert rgba.shape == (12, 16, 4)
    np.testing.assert_array_equal(rgba[..., 3], _image(2, (12, 16, 4))[..., 3])


def test_precision_is_passed_on_and_checked(tmp_path, fake, capsys):
    write_image(tmp_path / "photo.png", _image(5))
    assert run([str(tmp_path / "photo.png"), "--out", str(tmp_path / "out"), "--precision", "float32"]) == 0
    assert fake.precision == "float32"
    with pytest.raises(SystemExit) as exit_info:
        run([str(tmp_path / "photo.png"), "--out", str(tmp_path / "out"), "--precision", "half"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'half'" in capsys.readouterr().err


def test_self_ensemble_is_passed_on(tmp_path, fake, capsys):
    write_image(tmp_path / "photo.png", _image(6))
    assert run([str(tmp_path / "photo.png"), "--out", str(tmp_path / "out")]) == 0
    assert fake.self_ensemble is False
    assert run([str(tmp_path / "photo.png"), "--out", str(tmp_path / "out2"), "--self-ensemble"]) == 0
    assert fake.self_ensemble is True


def test_files_and_pixelate(tmp_path, fake, capsys):
    write_image(tmp_path / "photo.png", _image(3, (20, 20, 3)))
    out = tmp_path / "out"
    assert run([str(tmp_path / "photo.png"), "--out", str(out), "--pixelate", "25"]) == 0
    assert "1 enhanced, 0 skipped" in capsys.readouterr().out
    pixelated = read_image(out / "photo.pixelated.png")
    assert len(np.unique(pixelated.reshape(-1, 3), axis=0)) <= 25  # 5×5 blocks.
    np.testing.assert_array_equal(read_image(out / "photo.png"), 255 - pixelated)


def test_sixteen_bit_stays_sixteen_bit(tmp_path, fake):
    deep = np.random.default_rng(4).integers(0, 65536, (8, 9, 3), dtype=np.uint16)
    write_image(tmp_path / "in" / "deep.png", deep)
    assert run([str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 0
    back = read_image(tmp_path / "out" / "deep.png")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, 65535 - deep)


def test_output_inside_input_is_not_reprocessed(tmp_path, fake, capsys):
    write_image(tmp_path / "a.png", _image(5))
    assert run([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert run([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert "1 enhanced, 0 skipped" in capsys.readouterr().out.splitlines()[-1]


def test_no_inputs_is_usage_error(tmp_path, fake, capsys):
    (tmp_path / "empty").mkdir()
    assert run([str(tmp_path / "empty"), str(tmp_path / "missing.png"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "missing.png" in err and "no input images" in err
    assert fake.loaded == []  # The model is not loaded for nothing.


def test_a_file_is_never_overwritten_by_its_own_result(tmp_path, fake, capsys):
    original = _image(7)
    write_image(tmp_path / "cat.png", original)
    assert run([str(tmp_path / "cat.png"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cat.png: its result would overwrite it; choose another --out" in err
    np.testing.assert_array_equal(read_image(tmp_path / "cat.png"), original)
    assert fake.loaded == []


def test_no_result_or_pixelated_copy_overwrites_another_input(tmp_path, fake, capsys):
    named, other = _image(8), _image(9)
    write_image(tmp_path / "out" / "cat.png", named)
    write_image(tmp_path / "in" / "cat.png", other)
    write_image(tmp_path / "in2" / "dog.png", _image(10))
    write_image(tmp_path / "in2" / "dog.pixelated.png", _image(11))
    # in/cat.png would land on out/cat.png, the file named first; in2's dog.png would write its
    # pixelated copy over the result of dog.pixelated.png (or the other way round).
    code = run([str(tmp_path / "in"), str(tmp_path / "in2"), "--out", str(tmp_path / "out"), "--pixelate", "50"])
    err = capsys.readouterr().err
    assert code == 1
    out, in2 = tmp_path / "out", tmp_path / "in2"
    assert (f"{in2 / 'dog.png'}: its output {out / 'dog.pixelated.png'} is already an output of "
            f"{in2 / 'dog.pixelated.png'}") in err
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "cat.png"), 255 - pixelate(other, 50))
    code = run([str(tmp_path / "out" / "cat.png"), str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "would overwrite it" in err and f"would overwrite the input {tmp_path / 'out' / 'cat.png'}" in err


def test_inputs_are_protected_by_identity_and_when_their_folder_is_out(tmp_path, fake, capsys):
    from PIL import Image

    # The same file under another name (a hard link here; a bind mount or a case-insensitive disk alike).
    original = _image(13)
    write_image(tmp_path / "in" / "x.png", original)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x.png").hardlink_to(tmp_path / "in" / "x.png")
    assert run([str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 2
    assert "x.png: its result would overwrite it" in capsys.readouterr().err
    np.testing.assert_array_equal(read_image(tmp_path / "in" / "x.png"), original)
    # A folder that is --out itself: its files are inputs, so a named file's result may not replace one.
    Image.fromarray(_image(14)).save(tmp_path / "kk.gif")
    write_image(tmp_path / "out" / "kk.png", original)
    assert run([str(tmp_path / "kk.gif"), str(tmp_path / "out"), "--out", str(tmp_path / "out")]) == 2
    assert f"would overwrite the input {tmp_path / 'out' / 'kk.png'}" in capsys.readouterr().err
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "kk.png"), original)


def test_an_out_through_a_folder_not_made_yet_is_seen_for_what_it_is(tmp_path, fake, capsys):
    original = _image(15)
    write_image(tmp_path / "d" / "a.png", original)
    # "d/missing/.." is d itself once "missing" exists: the result would land on the input.
    assert run([str(tmp_path / "d" / "a.png"), "--out", str(tmp_path / "d" / "missing" / "..")]) == 2
    assert "its result would overwrite it" in capsys.readouterr().err
    np.testing.assert_array_equal(read_image(tmp_path / "d" / "a.png"), original)
    # The same file named twice is enhanced once, not reported as a clash.
    assert run([str(tmp_path / "d" / "a.png"), str(tmp_path / "d" / "a.png"), str(tmp_path / "d"),
                "--out", str(tmp_path / "o")]) == 0
    assert "1 enhanced, 0 skipped" in capsys.readouterr().out


def test_folder_inside_out_says_why_nothing_was_found(tmp_path, fake, capsys):
    write_image(tmp_path / "a.png", _image(5))
    write_image(tmp_path / "b.png", _image(6))
    assert run([str(tmp_path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "the 2 found are inside --out" in err and "choose another --out" in err


@pytest.mark.parametrize("where", ["file", "under_a_file"])
def test_out_that_is_not_a_usable_folder_is_a_usage_error_before_the_model_loads(tmp_path, fake, capsys, where):
    write_image(tmp_path / "a.png", _image(5))
    (tmp_path / "taken").write_text("not a folder")
    out = tmp_path / "taken" if where == "file" else tmp_path / "taken" / "sub"
    assert run([str(tmp_path / "a.png"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert ("--out must be a folder" if where == "file" else "cannot create the --out folder") in err
    assert fake.loaded == []
    assert (tmp_path / "taken").read_text() == "not a folder"


def test_a_format_we_cannot_write_is_written_as_png(tmp_path, fake, capsys):
    from PIL import Image

    Image.fromarray(_image(12)).save(tmp_path / "anim.gif")
    assert run([str(tmp_path / "anim.gif"), "--out", str(tmp_path / "out")]) == 0
    assert read_image(tmp_path / "out" / "anim.png").shape == (12, 16, 3)


def test_small_tiles_get_a_note_on_time(tmp_path, fake, capsys):
    write_image(tmp_path / "a.png", _image(5))
    assert run([str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--tile-size", "64"]) == 0
    assert "--tile-size 64 with the model's 88-pixel context margin computes about 14.1x" in capsys.readouterr().err
    assert run([str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--tile-size", "1024"]) == 0
    assert "note:" not in capsys.readouterr().err


def test_results_keep_the_inputs_colour_profile(tmp_path, fake):
    from conftest import srgb_profile
    from PIL import Image

    from srmodel.images import read_icc_profile

    profile = srgb_profile()
    Image.fromarray(_image(3)).save(tmp_path / "p3.jpg", icc_profile=profile)
    assert run([str(tmp_path / "p3.jpg"), "--out", str(tmp_path / "o"), "--pixelate", "40"]) == 0
    assert read_icc_profile(tmp_path / "o" / "p3.jpg") == read_icc_profile(tmp_path / "o" / "p3.pixelated.jpg") == profile


def test_pixelating_outside_the_trained_range_gets_a_note(tmp_path, fake, capsys):
    write_image(tmp_path / "a.png", _image(5))
    assert run([str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--pixelate", "90"]) == 0
    assert "note: the model trained on pixelation of 20-60 %; at --pixelate 90" in capsys.readouterr().err
    assert run([str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--pixelate", "40"]) == 0
    assert "note:" not in capsys.readouterr().err


def test_max_megapixels_skips_larger_images_and_can_be_raised(tmp_path, fake, capsys):
    write_image(tmp_path / "big.png", _image(5, (300, 400, 3)))  # 0.12 MP
    assert run([str(tmp_path / "big.png"), "--out", str(tmp_path / "o"), "--max-megapixels", "0.1"]) == 1
    assert "more than the limit of 100,000" in capsys.readouterr().err
    assert not (tmp_path / "o" / "big.png").exists()
    assert run([str(tmp_path / "big.png"), "--out", str(tmp_path / "o"), "--max-megapixels", "0.2"]) == 0
    assert read_image(tmp_path / "o" / "big.png").shape == (300, 400, 3)


def test_bad_model_is_usage_error(tmp_path, monkeypatch, capsys):
    def fail(source, precision=None):
        raise ModelLoadError(f"Model folder not found: {source}")

    monkeypatch.setattr(cli_enhance, "_load_enhancer", fail)
    write_image(tmp_path / "a.png", _image(6))
    assert run([str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--model", "nowhere"]) == 2
    assert "Model folder not found: nowhere" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # The --out it made for the run is gone again.
    assert run([str(tmp_path / "a.png"), "--out", str(tmp_path / "new" / "deeper"), "--model", "nowhere"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_without_tile_size_the_model_keeps_its_own(tmp_path, fake):
    write_image(tmp_path / "in" / "a.png", _image(0))
    assert run([str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 0
    assert fake.tile_size == 1024


@pytest.mark.parametrize("flags", [["--pixelate", "0"], ["--pixelate", "101"], ["--tile-size", "4"], [],
                                   ["--max-megapixels", "0"], ["--max-megapixels", "nan"], ["--max-megapixels", "x"]])
def test_bad_flags_exit_2(tmp_path, flags):
    argv = [str(tmp_path)] + (["--out", str(tmp_path / "o")] if flags else []) + flags
    with pytest.raises(SystemExit) as exc:
        run(argv)
    assert exc.value.code == 2


def test_real_model_end_to_end(tmp_path, monkeypatch):
    """The real Enhancer with an untrained default model, on a gray and an RGBA image."""
    from srmodel.architectures import build_model
    from srmodel.inference import Enhancer

    monkeypatch.setattr(cli_enhance, "_load_enhancer", lambda source, precision=None: Enhancer(build_model("default")))
    write_image(tmp_path / "in" / "g.png", _image(7, (30, 41, 3))[..., 0])
    write_image(tmp_path / "in" / "t.webp", _image(8, (30, 41, 4)))
    assert run([str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--tile-size", "16"]) == 0
    assert read_image(tmp_path / "out" / "g.png").shape == (30, 41)
    assert read_image(tmp_path / "out" / "t.webp").shape == (30, 41, 4)
    assert run([str(tmp_path / "in"), "--out", str(tmp_path / "ens"), "--tile-size", "16", "--self-ensemble"]) == 0
    assert read_image(tmp_path / "ens" / "t.webp").shape == (30, 41, 4)
