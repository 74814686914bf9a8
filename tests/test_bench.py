"""Smoke tests for bench/quality.py and bench/speed.py on a tiny random-weight model folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
                        "--model", f"default={tiny_model}", "--json", str(out_json), "--samples", str(samples))
    assert "| set | % | n | pixelated | bicubic | default" in stdout
    assert "| Set5, first 1 | 40 | 1 |" in stdout
    payload = json.loads(out_json.read_text())
    (row,) = payload["results"]
    assert row["set"] == "set5" and row["percent"] == 40 and row["images"] == 1
    for method in ("pixelated", "bicubic", "default"):
        assert 5 < row["methods"][method]["psnr"] < 100
        assert -1 <= row["methods"][method]["ssim"] <= 1
    assert 0 < samples.stat().st_size <= 500 * 1024


def test_quality_exits_clearly_without_data(tmp_path):
    command = [sys.executable, str(REPO_ROOT / "bench" / "quality.py"), "--data-root", str(tmp_path / "nope")]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode != 0
    assert "data root not found" in proc.stderr


def test_speed_prints_table_and_writes_json(tiny_model, tmp_path):
    out_json = tmp_path / "speed.json"
    stdout = run_script("speed.py", "--sizes", "32", "--repeats", "1", "--no-peers",
                        "--model", f"tiny={tiny_model}", "--json", str(out_json))
    assert "Device:" in stdout
    assert "| method | 32×32 |" in stdout
    assert "| tiny (tiled Enhancer) |" in stdout and "| tiny (whole image) |" in stdout
    payload = json.loads(out_json.read_text())
    methods = {(r["method"], r["mode"]) for r in payload["results"]}
    assert methods == {("bicubic", "-"), ("tiny", "enhancer"), ("tiny", "whole")}
    for result in payload["results"]:
        assert result["mp_per_s"] > 0 and result["peak_rss_mb"] > 0
