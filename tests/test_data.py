"""Data: discovery, skipping bad files, deterministic splits, LFW download from a local archive."""

import hashlib
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srmodel.data import download_lfw, find_image_files, load_exclusions, read_rgb, scan_images, split_paths
from srmodel.errors import DataError


def _photo(path, size=(40, 30), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(str(path))) % 2**32)
    array = rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
    Image.fromarray(array, "RGBA").convert(mode).save(path)
    return path


def test_finds_all_formats_recursively_and_skips_bad_files(tmp_path):
    _photo(tmp_path / "a.jpg")
    _photo(tmp_path / "deep" / "er" / "b.PNG", mode="RGBA")
    _photo(tmp_path / "c.webp", mode="L")
    _photo(tmp_path / "d.bmp", mode="P")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "notes.txt").write_text("not an image")
    scan = scan_images([tmp_path])
    assert sorted(p.name for p in scan.paths) == ["a.jpg", "b.PNG", "c.webp", "d.bmp"]
    assert [p.name for p, _ in scan.skipped] == ["broken.png"]
    for path in scan.paths:
        image = read_rgb(path)
        assert image.dtype == np.uint8 and image.shape == (30, 40, 3)


def test_sixteen_bit_gray_is_scaled(tmp_path):
    array = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(array).save(path)
    image = read_rgb(path)
    assert image.shape == (64, 64, 3) and image.max() == 255 and image.min() == 0


def test_missing_empty_and_all_corrupt(tmp_path):
    with pytest.raises(DataError, match="not found"):
        scan_images([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        scan_images([tmp_path / "empty"])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"nope")
    with pytest.raises(DataError, match="could be read"):
        scan_images([tmp_path / "bad"])


def test_split_is_deterministic_and_disjoint(tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(50)]
    train, val = split_paths(paths, 0.2, seed=3)
    assert (train, val) == split_paths(list(reversed(paths)), 0.2, seed=3)
    assert len(val) == 10 and not set(train) & set(val)
    assert split_paths(paths, 0.2, seed=4)[1] != val
    assert split_paths(paths[:1])[0] == paths[:1]


def test_exclusions(tmp_path):
    _photo(tmp_path / "A" / "A_0001.jpg")
    _photo(tmp_path / "B" / "B_0001.jpg")
    listing = tmp_path / "holdout.txt"
    listing.write_text("# comment\nA/A_0001.jpg\n")
    scan = scan_images([tmp_path], load_exclusions(listing))
    assert [p.name for p in scan.paths] == ["B_0001.jpg"]


def test_exclusions_written_every_usual_way_all_match_and_misses_are_named(tmp_path):
    for name in ("a", "b", "c", "d", "e", "f"):
        _photo(tmp_path / "data" / "1" / "2" / "3" / "4" / f"{name}.jpg")
    absolute = (tmp_path / "data" / "1" / "2" / "3" / "4" / "f.jpg").resolve()
    listing = tmp_path / "holdout.txt"
    listing.write_text("\ufeffa.jpg\n./1/2/3/4/b.jpg\n.\\1\\2\\3\\4\\c.jpg\nd.jpg  # a note\n"
                       f"   # an indented comment\n{absolute}\nnowhere.jpg\n", encoding="utf-8")
    scan = scan_images([tmp_path / "data"], load_exclusions(listing))
    assert [p.name for p in scan.paths] == ["e.jpg"]
    assert scan.excluded == 5 and scan.unmatched == ["nowhere.jpg"]
    with pytest.raises(DataError, match="every image found in .* is left out by --exclude"):
        scan_images([tmp_path / "data"], ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg"])


def test_an_absolute_exclusion_matches_through_a_linked_relative_data_folder(tmp_path, monkeypatch):
    _photo(tmp_path / "real" / "sub" / "x.jpg")
    _photo(tmp_path / "real" / "sub" / "Photo #1.jpg")
    _photo(tmp_path / "real" / "sub" / "kept.jpg")
    (tmp_path / "d").symlink_to(tmp_path / "real", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    listing = tmp_path / "holdout.txt"
    listing.write_text(f"{tmp_path / 'd' / 'sub' / 'x.jpg'}\nsub/Photo #1.jpg\n")
    scan = scan_images(["d"], load_exclusions(listing))
    assert [p.name for p in scan.paths] == ["kept.jpg"]
    assert scan.excluded == 2 and scan.unmatched == []


def test_training_reads_images_as_the_demo_shows_them(tmp_path):
    from srmodel.images import read_image

    rgba = np.zeros((8, 10, 4), np.uint8)
    rgba[:, :5] = (200, 10, 10, 255)
    rgba[:, 5:] = (0, 0, 0, 0)  # black, but fully transparent: white, as a viewer shows it
    Image.fromarray(rgba).save(tmp_path / "logo.png")
    out = read_rgb(tmp_path / "logo.png")
    assert (out[:, :5] == (200, 10, 10)).all() and (out[:, 5:] == 255).all()
    dark = np.full((6, 7), 145, np.uint16)  # 16-bit, all values small: dark, not bright
    Image.fromarray(dark).save(tmp_path / "dark16.png")
    assert (read_rgb(tmp_path / "dark16.png") == 1).all()
    photo = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: stored landscape, shown portrait
    Image.fromarray(photo).save(tmp_path / "turned.jpg", exif=exif, quality=100)
    assert read_rgb(tmp_path / "turned.jpg").shape == (30, 20, 3) == read_image(tmp_path / "turned.jpg").shape


def test_a_file_name_tensorflow_cannot_take_is_skipped_with_the_reason(tmp_path):
    import os

    _photo(tmp_path / "ok.jpg")
    bad = os.fsdecode(os.fsencode(str(tmp_path)) + b"/bad\xff\xfe.jpg")
    _photo(Path(bad))
    scan = scan_images([tmp_path])
    assert [p.name for p in scan.paths] == ["ok.jpg"]
    assert "not valid UTF-8" in scan.skipped[0][1]


def test_lfw_download_from_local_archive(tmp_path):
    source = tmp_path / "src"
    for name in ("Ann_Smith", "Bo_Li"):
        _photo(source / "lfw" / name / f"{name}_0001.jpg", size=(250, 250))
    archive = tmp_path / "lfw.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "lfw", arcname="lfw")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    folder = download_lfw(cache_dir=str(tmp_path / "cache"), origin=archive.as_uri(), file_hash=digest)
    assert sorted(p.name for p in find_image_files(folder)) == ["Ann_Smith_0001.jpg", "Bo_Li_0001.jpg"]
    # Cached: a second call does not need the origin any more.
    again = download_lfw(cache_dir=str(tmp_path / "cache"), origin=(tmp_path / "gone.tgz").as_uri(), file_hash=digest)
    assert again == folder
    with pytest.raises(DataError, match="Could not download LFW"):
        download_lfw(cache_dir=str(tmp_path / "cache2"), origin=archive.as_uri(), file_hash="0" * 64)


def _flat_images(folder, value, count):
    folder.mkdir()
    for i in range(count):
        Image.fromarray(np.full((32, 32, 3), value, np.uint8)).save(folder / f"{i}.png")
    return sorted(folder.iterdir())


def test_training_sources_are_drawn_by_weight(tmp_path):
    from srmodel.data import make_train_dataset

    dark, light = _flat_images(tmp_path / "dark", 0, 4), _flat_images(tmp_path / "light", 255, 2)
    kwargs = {"patch_size": 16, "batch_size": 400, "percent_range": (20.0, 60.0)}
    _, y = next(iter(make_train_dataset([dark, light], weights=[1.0, 3.0], **kwargs)))
    assert 0.68 < float(np.mean(np.mean(y, axis=(1, 2, 3)) > 0.5)) < 0.82
    _, y = next(iter(make_train_dataset([dark, light], weights=[0.0, 1.0], **kwargs)))
    assert float(np.min(y)) == 1.0  # a source of weight 0 is never drawn
    with pytest.raises(ValueError, match="one weight per group"):
        make_train_dataset([dark, light], weights=[1.0], **kwargs)


def test_reweighting_sources_keeps_the_validation_split(tmp_path):
    from srmodel.training import TrainSettings, prepare_data

    faces, photos = tmp_path / "faces", tmp_path / "photos"
    _flat_images(faces, 0, 10), _flat_images(photos, 255, 10)
    data = [str(faces), str(photos)]
    equal = prepare_data(TrainSettings(data=data, out=str(tmp_path / "o"), balance=True))
    photos_only = prepare_data(TrainSettings(data=data, out=str(tmp_path / "o"), balance=[0.0, 1.0]))
    assert photos_only[2] == equal[2]  # the same held-out files
    assert len(equal[0]) == 2 and equal[1] == [1.0, 1.0]
    assert photos_only[0] == [equal[0][1]] and photos_only[1] == [1.0]


def test_sample_seed_seeds_the_patches_but_keeps_the_validation_split(tmp_path):
    from srmodel.training import TrainSettings, prepare_data

    _flat_images(tmp_path / "a", 0, 10), _flat_images(tmp_path / "b", 255, 10)
    data = [str(tmp_path / "a"), str(tmp_path / "b")]
    first = TrainSettings(data=data, out=str(tmp_path / "o"))
    again = TrainSettings(data=data, out=str(tmp_path / "o"), sample_seed=7)
    other_split = TrainSettings(data=data, out=str(tmp_path / "o"), seed=7)
    assert (first.patch_seed, again.patch_seed) == (0, 7)
    held_out = prepare_data(first)[2]
    assert prepare_data(again)[2] == held_out  # the same held-out files
    assert prepare_data(other_split)[2] != held_out


def test_nested_or_repeated_sources_use_each_file_once(tmp_path, capsys):
    from srmodel.training import TrainSettings, prepare_data

    _flat_images(tmp_path / "all", 0, 6), _flat_images(tmp_path / "all" / "sub", 255, 6)
    scan = scan_images([tmp_path / "all", tmp_path / "all" / "sub", str(tmp_path / "all") + "/"])
    assert len(scan.paths) == 12 and scan.duplicates == 18
    data = [str(tmp_path / "all" / "sub"), str(tmp_path / "all")]
    groups, _, val, _, _ = prepare_data(TrainSettings(data=data, out=str(tmp_path / "o"), balance=True))
    train = [p.resolve() for group in groups for p in group]
    assert len(train) == len(set(train)) and not set(train) & {p.resolve() for p in val}  # no leak, no repeat
    assert all(p.parent.name == "sub" for p in groups[0]) and all(p.parent.name == "all" for p in groups[1])
    assert "6 file(s) found under more than one --data folder: each is used once" in capsys.readouterr().out
    prepare_data(TrainSettings(data=data[::-1], out=str(tmp_path / "o"), balance=True))
    assert f"--data {data[0]} has no training images of its own" in capsys.readouterr().err


def test_the_cache_holds_8_bit_pixels_and_small_images_are_still_enlarged(tmp_path):
    import tensorflow as tf

    from srmodel.data import make_train_dataset

    small = _flat_images(tmp_path / "small", 128, 2)  # 32×32, under the 40-pixel patches
    ds = make_train_dataset([small], patch_size=40, batch_size=3, percent_range=(40.0, 40.0))
    cached = ds
    while not type(cached).__name__.startswith("CacheDataset"):
        cached = cached._input_dataset
    assert cached.element_spec.dtype == tf.uint8
    x, y = next(iter(ds))
    assert x.shape == (3, 40, 40, 3) and y.dtype == tf.float32
    assert np.allclose(y.numpy(), 128 / 255, atol=1e-6)


def test_a_link_looping_back_up_the_tree_is_walked_once(tmp_path):
    _photo(tmp_path / "data" / "a.jpg")
    (tmp_path / "data" / "self").symlink_to(tmp_path / "data", target_is_directory=True)
    assert [p.name for p in find_image_files(tmp_path / "data")] == ["a.jpg"]
    assert scan_images([tmp_path / "data"]).duplicates == 0
