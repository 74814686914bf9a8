"""Smoke tests for the bench/ scripts on a tiny random-weight model folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = (REPO_ROOT / ".." / "shared" / "data").resolve()
needs_data = pytest.mark.skipif(
    not (DATA_ROOT / "benchmarks" / "Set5").is_dir(),
    reason=f"benchmark data not found at {DATA_ROOT} (the ../shared/data folder next to the repo)",
)


def write_tiny_model(folder: Path) -> Path:
    """A random-weight "default" model folder (model.keras, config.json, metrics.json)."""
    from srmodel import build_model

    folder.mkdir(parents=True)
    kwargs = {"filters": 8, "blocks": 1}
    build_model("default", **kwargs).save(folder / "model.keras")
    config = {"format_version": 1, "srmodel_version": "0.1.0", "architecture": {"name": "default", "kwargs": kwargs}}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "metrics.json").write_text("{}", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("bench") / "tiny")


def run_script(name: str, *args: str) -> str:
    command = [sys.executable, str(REPO_ROOT / "bench" / name), *args]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    return proc.stdout


@needs_data
def test_quality_prints_table_writes_json_and_samples(tiny_model, tmp_path):
    out_json, samples = tmp_path / "quality.json", tmp_path / "comparison.png"
    stdout = run_script("quality.py", "--limit", "1", "--sets", "set5", "--percents", "40",
                        "--model", f"default={tiny_model}", "--json", str(out_json), "--samples", str(samples),
                        "--self-ensemble")
    assert "| set | % | n | pixelated | bicubic | default | default ×8 |" in stdout
    assert "| default − bicubic | default ×8 − bicubic |" in stdout
    assert "| Set5, first 1 | 40 | 1 |" in stdout
    payload = json.loads(out_json.read_text())
    (row,) = payload["results"]
    assert row["set"] == "set5" and row["percent"] == 40 and row["images"] == 1
    assert row["methods"]["default ×8"] != row["methods"]["default"]
    for method in ("pixelated", "bicubic", "default", "default ×8"):
        assert 5 < row["methods"][method]["psnr"] < 100
        assert -1 <= row["methods"][method]["ssim"] <= 1
    assert 0 < samples.stat().st_size <= 500 * 1024


def test_quality_scores_your_own_folder_without_shared_data(tiny_model, tmp_path):
    from PIL import Image

    photos = tmp_path / "my photos"
    (photos / "sub").mkdir(parents=True)
    y, x = np.mgrid[0:60, 0:90].astype(np.float32)
    smooth = np.stack([np.sin(x / 6 + c) * np.cos(y / 9) for c in range(3)], axis=-1) * 0.5 + 0.5
    Image.fromarray(np.rint(smooth * 255).astype(np.uint8)).save(photos / "a.png")
    Image.fromarray(np.rint(smooth[..., 0] * 65535).astype(np.uint16)).save(photos / "sub" / "gray16.png")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    out_json = tmp_path / "quality.json"
    stdout = run_script("quality.py", "--images", f"mine={photos}", "--percents", "40", "--data-root",
                        str(tmp_path / "no shared data"), "--model", f"default={tiny_model}", "--json", str(out_json))
    assert f"| mine ({photos}) | 40 | 2 |" in stdout
    assert f"left out: {photos / 'broken.jpg'}" in stdout
    (row,) = json.loads(out_json.read_text())["results"]
    assert row["set"] == "mine" and row["images"] == 2
    # A smooth picture: bicubic from the small image beats the blocky pixelated one.
    assert row["methods"]["bicubic"]["psnr"] > row["methods"]["pixelated"]["psnr"] + 1


@pytest.mark.parametrize(("spec", "message"), [
    ("mine", "--images expects NAME=FOLDER"),
    ("set5={folder}", "is the name of a built-in set"),
    ("mine={folder}/nope", "not a folder"),
    ("mine={folder}", "no PNG, JPEG, WebP, BMP or TIFF files under"),
])
def test_quality_refuses_a_bad_images_option_before_any_work(tmp_path, spec, message):
    command = [sys.executable, str(REPO_ROOT / "bench" / "quality.py"), "--images", spec.format(folder=tmp_path)]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_quality_exits_clearly_without_data(tmp_path):
    command = [sys.executable, str(REPO_ROOT / "bench" / "quality.py"), "--data-root", str(tmp_path / "nope")]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode != 0
    assert "data root not found" in proc.stderr


def test_speed_prints_table_and_writes_json(tiny_model, tmp_path):
    out_json = tmp_path / "speed.json"
    stdout = run_script("speed.py", "--sizes", "32", "--repeats", "1", "--no-peers", "--precision", "float32",
                        "--precision", "bfloat16", "--model", f"tiny={tiny_model}", "--json", str(out_json),
                        "--self-ensemble")
    assert "Device:" in stdout
    assert "| method | 32×32 |" in stdout
    for row in ("tiny (tiled Enhancer, float32)", "tiny (whole image, float32)",
                "tiny (tiled Enhancer, bfloat16)", "tiny (whole image, bfloat16)",
                "tiny (tiled Enhancer, self-ensemble ×8, float32)"):
        assert f"| {row} |" in stdout
    payload = json.loads(out_json.read_text())
    methods = {(r["method"], r["mode"], r.get("precision")) for r in payload["results"]}
    assert methods == {("bicubic", "-", None)} | {
        ("tiny", mode, precision) for mode in ("enhancer", "whole", "ensemble") for precision in ("float32", "bfloat16")}
    for result in payload["results"]:
        assert result["mp_per_s"] > 0 and result["peak_rss_mb"] > 0


def test_bench_precision_choices_are_the_librarys():
    import importlib.util

    from srmodel.precision import PRECISIONS

    spec = importlib.util.spec_from_file_location("bench_common", REPO_ROOT / "bench" / "common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    assert common.PRECISION_CHOICES == PRECISIONS


def test_speed_times_auto_precision_once(tiny_model, tmp_path):
    out_json = tmp_path / "speed.json"
    stdout = run_script("speed.py", "--sizes", "32", "--repeats", "1", "--no-peers", "--whole-max", "0",
                        "--model", f"tiny={tiny_model}", "--json", str(out_json))  # default: float32 and auto
    timed = [r for r in json.loads(out_json.read_text())["results"] if r["method"] == "tiny"]
    skipped = [r for r in timed if "skipped" in r]
    measured = [r["precision"] for r in timed if "skipped" not in r]
    assert "float32" in measured and len(measured) == len(set(measured))  # auto = float32 here is not re-timed
    assert len(skipped) + len(measured) == 2 and all(r["precision"] == "float32" for r in skipped)
    assert stdout.count("| tiny (tiled Enhancer,") == len(measured)


def test_validation_scores_each_source_of_a_runs_own_split(tiny_model, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    roots = [tmp_path / "faces", tmp_path / "photos"]
    for root in roots:
        root.mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / f"{i}.png")
    run = tmp_path / "run"
    run.mkdir()
    training = {"data": [str(r) for r in roots], "exclude": None, "val_split": 0.5, "seed": 0}
    (run / "config.json").write_text(json.dumps({"training": training}), encoding="utf-8")
    stdout = run_script("validation.py", "--run", str(run), "--model", f"tiny={tiny_model}", "--percents", "40", "60")
    assert "| source | % | n | pixelated | bicubic | tiny |" in stdout
    rows = [line for line in stdout.splitlines() if line.startswith(f"| {tmp_path}")]
    assert len(rows) == 4  # two sources × two percents; 8 files split in half
    assert sum(int(row.split(" | ")[2]) for row in rows) == 2 * 4
    only = run_script("validation.py", "--run", str(run), "--model", f"tiny={tiny_model}", "--source", "photos",
                      "--json", str(tmp_path / "v.json"))
    assert [line for line in only.splitlines() if line.startswith(f"| {tmp_path}")][0].startswith(f"| {roots[1]} | 40 |")
    written = json.loads((tmp_path / "v.json").read_text())
    assert [(r["source"], r["percent"], r["images"]) for r in written["rows"]] == [(str(roots[1]), 40.0, 2)]
    cell = written["rows"][0]["methods"]["tiny"]
    assert written["models"] == {"tiny": str(tiny_model)} and 0 < cell["psnr"] < 100 and 0 < cell["ssim"] <= 1


def test_validation_needs_a_training_folder(tmp_path):
    command = [sys.executable, str(REPO_ROOT / "bench" / "validation.py"), "--run", str(tmp_path), "--model", "x=y"]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode != 0
    assert "needs a finished training folder" in proc.stderr


def test_int8_probe_compares_quantised_and_float_models(tiny_model, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for folder, count, size in (("train/T91", 3, (100, 120)), ("benchmarks/Set5", 2, (48, 40))):
        (tmp_path / folder).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(tmp_path / folder / f"{i}.png")
    stdout = run_script("int8_probe.py", "--model", f"tiny={tiny_model}", "--data-root", str(tmp_path),
                        "--sets", "set5", "--limit", "2", "--calibration", "4", "--size", "64", "--repeats", "1")
    (row,) = [line for line in stdout.splitlines() if line.startswith("| set5 |")]
    images, bicubic, keras_psnr, int8_psnr, delta = row.strip("| ").split(" | ")[1:]
    assert images == "2" and all(5 < float(v) < 100 for v in (bicubic, keras_psnr, int8_psnr))
    assert abs(float(delta)) < 3  # An untrained model is nearly the identity: int8 loses little of it.
    speeds = [line for line in stdout.splitlines() if line.startswith(("| float32 |", "| int8 |"))]
    assert len(speeds) == 2 and all(float(line.split(" | ")[1].rstrip(" |")) > 0 for line in speeds)


def test_int8_probe_stops_when_no_calibration_image_is_large_enough(tiny_model, tmp_path):
    from PIL import Image

    (tmp_path / "train/T91").mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "train/T91" / f"{i}.png")
    command = [sys.executable, str(REPO_ROOT / "bench" / "int8_probe.py"), "--model", f"tiny={tiny_model}",
               "--data-root", str(tmp_path), "--calibration", "4", "--size", "64", "--repeats", "1"]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode != 0
    assert "every calibration image" in proc.stderr and "smaller than 96×96 pixels" in proc.stderr


def test_speed_keras_times_models_on_the_jax_backend(tiny_model, tmp_path):
    pytest.importorskip("jax", reason="the JAX backend is installed by requirements-dev.txt")
    import os

    out_json = tmp_path / "speed_keras.json"
    command = [sys.executable, str(REPO_ROOT / "bench" / "speed_keras.py"), "--model", f"tiny={tiny_model}",
               "--sizes", "32", "48", "--repeats", "2", "--json", str(out_json)]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "KERAS_BACKEND": "jax"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "on jax; device:" in proc.stdout and "| tiny |" in proc.stdout
    payload = json.loads(out_json.read_text())
    assert payload["backend"] == "jax"
    assert [c["size"] for c in payload["results"][0]["cells"]] == [32, 48]
    assert all(c["mp_per_s"] > 0 and c["runs"] == 2 for c in payload["results"][0]["cells"])


def test_speed_keras_names_a_bad_model_spec(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "speed_keras.py"), "--model", "nofolder"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "Received: 'nofolder'" in proc.stderr


def test_arithmetic_prints_counts_and_the_speed_they_allow(tiny_model, tmp_path):
    out_json = tmp_path / "arithmetic.json"
    stdout = run_script("arithmetic.py", "--model", f"tiny={tiny_model}", "--matmul-size", "64", "--repeats", "1",
                        "--json", str(out_json))
    assert "| model | multiply-adds per output pixel |" in stdout
    payload = json.loads(out_json.read_text())
    (row,) = payload["models"]
    assert row["name"] == "tiny" and row["multiply_adds_per_pixel"] == 9 * (12 * 8 + 2 * 8 * 8 + 8 * 12) / 4
    for precision in ("float32", "bfloat16"):
        rate = payload["gmac_per_s"][precision]
        assert rate > 0
        assert row["bound_mp_per_s"][precision] == pytest.approx(rate * 1e3 / row["multiply_adds_per_pixel"])
    assert f"| tiny | {row['multiply_adds_per_pixel']:,.0f} |" in stdout


def test_a_mistyped_model_folder_stops_before_any_work(tmp_path):
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    try:
        import common
    finally:
        sys.path.remove(str(REPO_ROOT / "bench"))
    with pytest.raises(SystemExit, match=r"--model mine: no model.keras in .*nope"):
        common.parse_model_specs([f"mine={tmp_path / 'nope'}"])
    assert common.parse_model_specs([f"ok={write_tiny_model(tmp_path / 'ok')}"]) == [("ok", tmp_path / "ok")]


def _run_failing(name: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO_ROOT / "bench" / name), *args]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def _validation_run(tmp_path: Path, val_split: float | None) -> Path:
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir(exist_ok=True)
    for i in range(4):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    run = tmp_path / f"run-{val_split}"
    run.mkdir()
    training = {"data": [str(photos)], "exclude": None, "val_split": val_split, "seed": 0}
    (run / "config.json").write_text(json.dumps({"training": training}), encoding="utf-8")
    return run


def test_bench_scripts_name_a_folder_that_is_not_a_model_in_one_line(tiny_model, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_model / "config.json").read_text(), encoding="utf-8")
    (broken / "model.keras").write_bytes(b"not a keras file")
    run = _validation_run(tmp_path, 0.5)
    for script, args in [
        ("validation.py", ["--run", str(run), "--model", f"b={broken}"]),
        ("quality.py", ["--images", f"mine={run.parent / 'photos'}", "--model", f"b={broken}", "--no-peers"]),
        ("arithmetic.py", ["--model", f"b={broken}", "--matmul-size", "64", "--repeats", "1"]),
    ]:
        proc = _run_failing(script, *args)
        assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith("error: "), script
        assert str(broken) in proc.stderr, script


def test_validation_refuses_a_run_without_a_split_and_bad_options(tiny_model, tmp_path):
    no_split = _validation_run(tmp_path, None)  # as tools/finetune.py --no-split records it
    proc = _run_failing("validation.py", "--run", str(no_split), "--model", f"t={tiny_model}")
    assert "held out no validation split" in proc.stderr
    run = _validation_run(tmp_path, 0.5)
    for args, message in [(["--percents", "0"], "--percents must be in (0, 100]"),
                          (["--limit", "0"], "--limit must be >= 1")]:
        proc = _run_failing("validation.py", "--run", str(run), "--model", f"t={tiny_model}", *args)
        assert proc.returncode == 2 and message in proc.stderr
    stdout = run_script("validation.py", "--run", str(run), "--model", f"t={tiny_model}", "--percents", "40", "40")
    assert len([line for line in stdout.splitlines() if line.startswith(f"| {tmp_path}")]) == 1


def test_quality_skips_lfw_with_a_note_when_the_data_has_no_faces(tmp_path):
    from PIL import Image

    set5 = tmp_path / "data" / "benchmarks" / "Set5"
    set5.mkdir(parents=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(set5 / "a.png")
    stdout = run_script("quality.py", "--data-root", str(tmp_path / "data"), "--sets", "set5", "lfw80", "--no-models",
                        "--no-peers", "--percents", "40", "40")
    assert "| Set5 | 40 | 1 |" in stdout and stdout.count("| Set5 |") == 1
    assert "Note: set 'lfw80' skipped: no images under" in stdout


def test_a_json_path_that_cannot_be_written_is_refused_before_the_run(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for script, extra in [("quality.py", ["--no-models", "--no-peers", "--sets", "set5"]),
                          ("speed.py", ["--no-models", "--no-peers"]),
                          ("arithmetic.py", []),
                          ("validation.py", ["--run", str(tmp_path), "--model", "x=y"])]:
        proc = _run_failing(script, *extra, "--json", str(blocker / "out.json"))
        assert proc.returncode == 2 and f"--json {blocker / 'out.json'}: cannot be written ({blocker} is a file" in proc.stderr
    proc = _run_failing("speed.py", "--budget-s", "-1")
    assert "--budget-s must be > 0 seconds" in proc.stderr
    proc = _run_failing("int8_probe.py", "--percent", "0")
    assert "--percent must be in (0, 100]" in proc.stderr
