"""Hub publishing and loading against a local fake Hub (tests/hub_server.py) with the real huggingface_hub client."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    ALL_TOKENS,
    FINE_GRAINED_TOKEN,
    FINE_WRITE_TOKEN,
    OTHER_TOKEN,
    READ_TOKEN,
    REPO_ROOT,
    WRITE_TOKEN,
    hf_env,
    make_model_folder,
    point_hf_at,
)

from srmodel.errors import HubAuthError, ModelLoadError
from srmodel.folder import FOLDER_FILES

IMAGE = (np.random.default_rng(0).random((37, 45, 3)) * 255).astype(np.uint8)


def _run(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], check=False, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def _no_token_in(*texts: str) -> None:
    for text in texts:
        for token in ALL_TOKENS:
            assert token not in text


def _no_token_in_files(root: Path) -> None:
    for path in Path(root).rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            data = path.read_bytes()
            for token in ALL_TOKENS:
                assert token.encode() not in data, f"token leaked into {path}"


# push / pull round trip ---------------------------------------------------------------------------


def test_push_then_load_in_fresh_cache_enhances_like_local_folder(hub_server, fake_hub, tmp_path, monkeypatch):
    from srmodel.hub import load_enhancer, push_folder

    folder = make_model_folder(tmp_path / "model")
    url = push_folder(folder, "alice/faces")
    assert url == f"{hub_server}/alice/faces"
    repo = fake_hub.repos["alice/faces"]
    assert set(FOLDER_FILES) <= set(fake_hub.files("alice/faces"))
    assert len(repo.commits) == 2, "all files must arrive in one commit (plus the repo's initial commit)"
    assert repo.messages[repo.branches["main"]] == "Upload srmodel default (val PSNR 31.20 dB)"

    point_hf_at(monkeypatch, hub_server, tmp_path / "fresh_home", token=None)  # a new machine, anonymous
    fake_hub.requests.clear()
    enhancer = load_enhancer("alice/faces")
    local = load_enhancer(str(folder))

    np.testing.assert_array_equal(enhancer.enhance(IMAGE), local.enhance(IMAGE))
    info = enhancer.info
    assert info["source"] == "hub" and info["repo_id"] == "alice/faces"
    assert info["revision"] == repo.branches["main"]
    assert info["architecture"] == "default"
    assert info["metrics"]["validation"]["model"]["psnr"] == 31.2
    assert local.info["source"] == "local"
    fetched = {p.split("/resolve/")[1].split("/", 1)[1] for m, p in fake_hub.requests if "/resolve/" in p}
    assert fetched == {"model.keras", "config.json", "metrics.json"}, "only the files needed to load"
    snapshot = tmp_path / "fresh_home" / "hub" / "models--alice--faces" / "snapshots" / info["revision"]
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "metrics.json", "model.keras"]


def test_pinned_revisions_load_that_version(hub_server, fake_hub, tmp_path):
    from srmodel.hub import load_enhancer, push_folder

    first = make_model_folder(tmp_path / "v1", seed=1, psnr=30.0)
    second = make_model_folder(tmp_path / "v2", seed=2, psnr=31.0)
    branch = make_model_folder(tmp_path / "v3", seed=3, psnr=32.0)
    push_folder(first, "alice/faces")
    first_sha = fake_hub.repos["alice/faces"].branches["main"]
    push_folder(second, "alice/faces", commit_message="second version")
    url = push_folder(branch, "alice/faces", revision="experiment")
    assert url.endswith("/alice/faces/tree/experiment")
    repo = fake_hub.repos["alice/faces"]
    assert repo.messages[repo.branches["main"]] == "second version"

    expected = {
        f"alice/faces@{first_sha}": (first, first_sha),
        "alice/faces": (second, repo.branches["main"]),
        "alice/faces@experiment": (branch, repo.branches["experiment"]),
    }
    outputs = {}
    for source, (folder, sha) in expected.items():
        enhancer = load_enhancer(source)
        assert enhancer.info["revision"] == sha
        outputs[source] = enhancer.enhance(IMAGE)
        np.testing.assert_array_equal(outputs[source], load_enhancer(str(folder)).enhance(IMAGE))
    assert not np.array_equal(outputs[f"alice/faces@{first_sha}"], outputs["alice/faces"])


# load failures ------------------------------------------------------------------------------------


def test_missing_revision_is_a_clear_error(hub_server, model_folder):
    from srmodel.hub import load_enhancer, push_folder

    push_folder(model_folder, "alice/faces")
    with pytest.raises(ModelLoadError, match="Revision 'nope' does not exist in alice/faces"):
        load_enhancer("alice/faces@nope")


def test_missing_repo_is_a_clear_error(hub_server):
    from srmodel.hub import load_enhancer

    with pytest.raises(ModelLoadError, match="alice/missing was not found on the Hub"):
        load_enhancer("alice/missing")


def test_bad_token_is_a_clear_error(hub_server, model_folder, monkeypatch):
    from srmodel.hub import load_enhancer, push_folder

    push_folder(model_folder, "alice/faces")
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token_000")
    with pytest.raises(ModelLoadError, match="rejected your Hugging Face token") as err:
        load_enhancer("alice/faces")
    assert "hf_not_a_real_token_000" not in str(err.value)


def test_private_repo_needs_a_token_that_can_read_it(hub_server, fake_hub, model_folder, monkeypatch, tmp_path,
                                                      capsys):
    from srmodel.hub import load_enhancer, push_folder

    push_folder(model_folder, "alice/secret", private=True)
    assert fake_hub.repos["alice/secret"].private
    push_folder(model_folder, "alice/open")
    push_folder(model_folder, "alice/open", private=True)  # existing and public: said, not silently ignored
    assert not fake_hub.repos["alice/open"].private
    assert "note: alice/open already existed and is public" in capsys.readouterr().err
    assert load_enhancer("alice/secret").info["source"] == "hub"  # alice can read her private repo

    for token in (None, OTHER_TOKEN):  # on other machines (a fresh cache: a cached copy would still load)
        point_hf_at(monkeypatch, hub_server, tmp_path / f"home_{token}", token=token)
        with pytest.raises(ModelLoadError, match="alice/secret was not found .* private") as err:
            load_enhancer("alice/secret@main")
        _no_token_in(str(err.value))


def test_stopped_server_is_a_clear_error(hub_server, fake_hub):
    from srmodel.hub import load_enhancer

    fake_hub.stop()
    start = time.monotonic()
    with pytest.raises(ModelLoadError, match="Could not reach the Hugging Face Hub"):
        load_enhancer("alice/faces")
    assert time.monotonic() - start < 30


@pytest.mark.parametrize(
    "files, message",
    [
        ({"model.keras": b"this is not a zip file"}, "corrupt"),
        ({"config.json": b"{not json"}, "not valid JSON"),
        ({"config.json": json.dumps({"format_version": 99, "architecture": {"name": "default"}}).encode()},
         "format version 99"),
        ({"config.json": json.dumps({"format_version": 1, "architecture": {"name": "gan-9000"}}).encode()},
         "unknown architecture"),
        ({"model.keras": None}, "not an srmodel model: it has no model.keras"),
        ({"model.keras": None, "config.json": None, "metrics.json": None},  # a repo with only a README
         r"not an srmodel model: it has no model.keras or config.json. Received files: \[\]"),
    ],
)
def test_broken_repo_contents_are_clear_errors(hub_server, fake_hub, model_folder, files, message):
    from srmodel.hub import load_enhancer, push_folder

    push_folder(model_folder, "alice/faces")
    fake_hub.commit(fake_hub.repos["alice/faces"], "main", files, "break it")
    with pytest.raises(ModelLoadError, match=message) as err:
        load_enhancer("alice/faces")
    assert "alice/faces" in str(err.value)


def test_local_sources_and_bad_names(tmp_path):
    from srmodel.hub import load_enhancer

    assert load_enhancer("bundled").info["source"] == "bundled"  # as train.py --init-from / --teacher take it

    with pytest.raises(ModelLoadError, match="Model folder not found"):
        load_enhancer(str(tmp_path / "nowhere" / "model"))
    with pytest.raises(ModelLoadError, match="Received: 'not a repo id'"):
        load_enhancer("not a repo id")
    folder = make_model_folder(tmp_path / "m")
    (folder / "model.keras").unlink()
    with pytest.raises(ModelLoadError, match="Missing model.keras"):
        load_enhancer(str(folder))


def _replace_network(folder: Path, kind: str) -> Path:
    import keras

    if kind == "nan weights":
        model = keras.saving.load_model(folder / "model.keras", safe_mode=True, compile=False)
        model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    else:
        shape = (32, 32, 3) if kind == "fixed size" else (None, None, 3)
        inputs = keras.Input(shape)
        outputs = keras.layers.Conv2D(1 if kind == "gray output" else 3, 3, padding="same")(inputs)
        if kind == "smaller output":
            outputs = keras.layers.MaxPooling2D()(outputs)
        model = keras.Model(inputs, outputs)
    model.save(folder / "model.keras")
    return folder


@pytest.mark.parametrize(("kind", "message"), [
    ("fixed size", r"expected an input of shape \(batch, any height, any width, 3\). Received: \(None, 32, 32, 3\)"),
    ("gray output", r"expected an RGB output .* Received: \(None, None, None, 1\)"),
    ("smaller output", r"a 24×24 test image came back as shape \(1, 12, 12, 3\)"),
    ("nan weights", "its output holds NaN or infinite values"),
])
def test_a_model_that_cannot_restore_images_is_refused_at_load(tmp_path, kind, message):
    from srmodel.hub import load_enhancer

    folder = _replace_network(make_model_folder(tmp_path / "m"), kind)
    with pytest.raises(ModelLoadError, match="is not an image restoration model srmodel can run: " + message):
        load_enhancer(str(folder))


def test_a_cached_copy_used_because_the_hub_refused_is_named(hub_server, fake_hub, model_folder, tmp_path,
                                                               monkeypatch, caplog):
    """huggingface_hub falls back to the cache when the Hub refuses (a revoked token, a deleted or private repo);
    the model still loads, but the user hears of it. A normal load says nothing of the kind."""
    import logging

    from huggingface_hub import constants

    from srmodel.hub import load_enhancer, push_folder

    push_folder(model_folder, "alice/secret", private=True)
    sha = fake_hub.repos["alice/secret"].branches["main"]
    with caplog.at_level(logging.WARNING, logger="srmodel.hub"):
        assert load_enhancer("alice/secret").info["revision"] == sha  # alice's token: fills the cache
        assert not caplog.records
        point_hf_at(monkeypatch, hub_server, Path(constants.HF_HOME), token=OTHER_TOKEN)  # bob may not read it
        assert load_enhancer("alice/secret").info["revision"] == sha
    (record,) = caplog.records
    assert "The Hub refused the request for alice/secret (HTTP 40" in record.getMessage()
    assert f"using the copy in the local cache (commit {sha[:12]})" in record.getMessage()


# offline ------------------------------------------------------------------------------------------


def test_offline_uses_the_cache_and_explains_a_miss(hub_server, fake_hub, model_folder, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from srmodel.hub import load_enhancer, push_folder

    push_folder(model_folder, "alice/faces")
    sha = fake_hub.repos["alice/faces"].branches["main"]
    assert load_enhancer("alice/faces").info["revision"] == sha  # fills the cache in the fixture's HF_HOME
    fake_hub.stop()

    home = Path(constants.HF_HOME)
    code = "import srmodel; e = srmodel.load_enhancer('alice/faces'); print(e.info['source'], e.info['revision'])"
    offline = _run(["-c", code], hf_env(hub_server, home, HF_HUB_OFFLINE="1"))
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.split()[-2:] == ["hub", sha]
    _no_token_in(offline.stdout, offline.stderr)
    _no_token_in_files(home)

    point_hf_at(monkeypatch, hub_server, tmp_path / "empty_home", token=WRITE_TOKEN)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE is set and alice/faces is not in the local cache"):
        load_enhancer("alice/faces")


# write access -------------------------------------------------------------------------------------


def test_check_write_access(hub_server, monkeypatch):
    from srmodel.hub import check_write_access

    assert check_write_access("alice/faces") == "alice"
    assert check_write_access("alice-org/faces") == "alice"
    assert check_write_access("bob/faces", token=OTHER_TOKEN) == "bob"
    assert check_write_access("alice-org/faces", token=FINE_WRITE_TOKEN) == "alice"
    cases = [
        ("bob/faces", WRITE_TOKEN, "belongs to 'alice', who is not a member of 'bob', so it cannot push to bob/faces. "
                                  "Use a repo id like 'alice/NAME' or 'alice-org/NAME', or log in"),
        ("alice/faces", READ_TOKEN, "cannot write to alice/faces: it is read-only"),
        ("alice/faces", FINE_GRAINED_TOKEN, "cannot write to alice/faces"),
        ("alice/faces", FINE_WRITE_TOKEN, "cannot write to alice/faces"),
        ("alice/faces", "hf_wrong_token_1234", "rejected"),
        ("faces", WRITE_TOKEN, r"Expected|looks like 'user/name'.*Received: 'faces'"),
        ("alice/--x", WRITE_TOKEN, r"Not a valid Hub repo id: .*cannot start or end with '-' or '\.'"),
        ("alice/" + "x" * 97, WRITE_TOKEN, "maximum length is 96"),
    ]
    for repo_id, token, message in cases:
        with pytest.raises(HubAuthError, match=message) as err:
            check_write_access(repo_id, token=token)
        _no_token_in(str(err.value))
        assert "hf_wrong_token_1234" not in str(err.value)

    monkeypatch.delenv("HF_TOKEN")
    start = time.monotonic()
    with pytest.raises(HubAuthError, match="No Hugging Face token found.*hf auth login.*HF_TOKEN="):
        check_write_access("alice/faces")
    assert time.monotonic() - start < 5


def test_push_with_read_only_token_is_refused(hub_server, fake_hub, model_folder):
    from srmodel.hub import push_folder

    with pytest.raises(HubAuthError, match="refused to let this token write to alice/faces"):
        push_folder(model_folder, "alice/faces", token=READ_TOKEN)
    assert "alice/faces" not in fake_hub.repos


# CLI ----------------------------------------------------------------------------------------------


def test_cli_push_uploads_and_prints_url(hub_server, fake_hub, model_folder, tmp_path):
    env = hf_env(hub_server, tmp_path / "cli_home")
    result = _run(["-m", "srmodel", "push", str(model_folder), "--repo-id", "alice/cli", "--private",
                   "--message", "first upload"], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"{hub_server}/alice/cli"
    repo = fake_hub.repos["alice/cli"]
    assert repo.private and repo.messages[repo.branches["main"]] == "first upload"
    assert set(FOLDER_FILES) <= set(fake_hub.files("alice/cli"))
    # The card names the repo it now lives in; the local folder keeps its own copy as it was.
    uploaded = fake_hub.files("alice/cli")["README.md"].decode()
    assert 'load_enhancer("alice/cli")' in uploaded and "\n# cli\n" in uploaded and "- name: cli\n" in uploaded
    assert 'load_enhancer("USER/NAME")' in (model_folder / "README.md").read_text()
    # A card edited by hand keeps its edits; only the placeholder is filled in.
    edited = (model_folder / "README.md").read_text() + "\nMy own notes.\n"
    (model_folder / "README.md").write_text(edited)
    assert _run(["-m", "srmodel", "push", str(model_folder), "--repo-id", "alice/cli"], env).returncode == 0
    assert fake_hub.files("alice/cli")["README.md"].decode() == edited.replace("USER/NAME", "alice/cli")
    _no_token_in(result.stdout, result.stderr)
    _no_token_in_files(tmp_path / "cli_home")


def test_enhance_from_the_hub_says_what_it_fetches_and_which_commit_it_got(hub_server, fake_hub, tmp_path):
    from PIL import Image

    from srmodel.hub import push_folder

    push_folder(make_model_folder(tmp_path / "model"), "alice/faces")
    sha = fake_hub.repos["alice/faces"].branches["main"]
    Image.fromarray(IMAGE).save(tmp_path / "a.png")
    result = _run(["-m", "srmodel", "enhance", str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--model",
                   "alice/faces"], hf_env(hub_server, tmp_path / "fresh_home", token=None))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Fetching alice/faces from the Hugging Face Hub (or its local cache) ..." in result.stderr
    assert f"Model: alice/faces at commit {sha[:12]} (default)" in result.stderr
    assert result.stderr.index("Fetching") < result.stderr.index("Model:")


def test_push_shows_no_absolute_local_paths(hub_server, fake_hub, tmp_path):
    from srmodel.hub import push_folder
    from srmodel.modelcard import render_model_card

    folder = make_model_folder(tmp_path / "m", card=False)
    config = json.loads((folder / "config.json").read_text())
    config["training"].update(data=["/home/alice/photos", "lfw", "../shared/data/train"],
                              exclude="/home/alice/holdout.txt", init_from="~/runs/stage1")
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "README.md").write_text(render_model_card(config, json.loads((folder / "metrics.json").read_text())))
    push_folder(folder, "alice/private-paths")
    files = fake_hub.files("alice/private-paths")
    uploaded = json.loads(files["config.json"])["training"]
    assert uploaded["data"] == ["photos", "lfw", "../shared/data/train"]  # relative paths say nothing private
    assert (uploaded["exclude"], uploaded["init_from"]) == ("holdout.txt", "stage1")
    assert b"/home/alice" not in files["README.md"] and b"~/runs" not in files["README.md"]
    assert json.loads((folder / "config.json").read_text())["training"]["data"][0] == "/home/alice/photos"  # kept here


def test_cli_push_refuses_broken_folders_before_the_network(hub_server, fake_hub, tmp_path, capsys, monkeypatch):
    from srmodel.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    bad_config = make_model_folder(tmp_path / "bad")
    (bad_config / "config.json").write_text(json.dumps({"format_version": 1, "architecture": {"name": "nope"}}))
    for folder, message in [(empty, "Missing model.keras"), (bad_config, "unknown architecture"),
                            (tmp_path / "missing", "Model folder not found")]:
        assert main(["push", str(folder), "--repo-id", "alice/x"]) == 2
        assert message in capsys.readouterr().err
    assert fake_hub.requests == []

    monkeypatch.delenv("HF_TOKEN")
    assert main(["push", str(bad_config.parent / "bad"), "--repo-id", "alice/x"]) == 2  # still the config error
    good = make_model_folder(tmp_path / "good")
    assert main(["push", str(good), "--repo-id", "alice/x"]) == 2
    err = capsys.readouterr().err
    assert "No Hugging Face token found" in err and "hf auth login" in err
    assert "alice/x" not in fake_hub.repos


# model card ---------------------------------------------------------------------------------------


def test_model_card_parses_and_holds_the_metrics(model_folder):
    from huggingface_hub import ModelCard

    from srmodel.modelcard import render_model_card

    config = json.loads((model_folder / "config.json").read_text())
    metrics = json.loads((model_folder / "metrics.json").read_text())
    config["training"]["data"] = ["lfw", "/data/photos/", "someone/portraits"]
    text = render_model_card(config, metrics, repo_id="alice/faces")
    card = ModelCard(text)
    data = card.data
    assert data.library_name == "keras" and data.pipeline_tag == "image-to-image"
    # The weights carry their training data's terms, not the code's MIT licence.
    assert data.license == "other" and data.license_name == "training-data-terms"
    assert "## Licence" in text and "LFW is for research use" in text
    assert {"super-resolution", "image-restoration", "depixelation", "keras"} <= set(data.tags)
    assert data.datasets is None  # --data names local folders, not Hub datasets the Hub would link to
    assert "lfw" in text and "photos" in text and "portraits" in text  # the text names them
    results = {r.metric_type: r.metric_value for r in data.eval_results}
    assert results == {"psnr": 31.2, "ssim": 0.91}
    assert data.eval_results[0].dataset_type == "lfw" and data.eval_results[0].task_type == "image-to-image"
    assert 'srmodel.load_enhancer("alice/faces")' in text
    for baseline in ("27.50", "0.8200", "28.10", "0.8400"):  # pixelated and bicubic rows of the table
        assert baseline in text
    assert "## Limitations" in text and "samples.png" in text

    folder_card = ModelCard.load(model_folder / "README.md")  # the card make_model_folder wrote
    assert folder_card.data.eval_results and 'load_enhancer("USER/NAME")' in folder_card.text


@pytest.mark.parametrize("revision", [None, "experiment"])
def test_the_cards_plain_keras_snippet_loads_the_pushed_model(hub_server, fake_hub, tmp_path, revision):
    """The card's Keras-only snippet, run as written in a fresh process, loads the very model the card came with,
    also from a branch (whose card must not point at main's model)."""
    import re

    import keras

    from srmodel.hub import push_folder

    push_folder(make_model_folder(tmp_path / "main", seed=0), "alice/faces")
    pushed = tmp_path / "main"
    if revision:
        pushed = make_model_folder(tmp_path / "branch", seed=1)
        push_folder(pushed, "alice/faces", revision=revision)
    card = fake_hub.files("alice/faces", revision or "main")["README.md"].decode("utf-8")
    where = f"alice/faces@{revision}" if revision else "alice/faces"
    assert f'srmodel.load_enhancer("{where}")' in card and f"--model {where}`" in card
    (snippet,) = [block for block in re.findall(r"```python\n(.*?)```", card, re.S) if "hf_hub_download" in block]
    code = snippet + (
        "import numpy as np\n"
        "print('SHAPE', model(np.zeros((1, 21, 19, 3), 'float32')).shape)\n"
        "print('WEIGHTS', sum(float(np.abs(w).sum()) for w in model.get_weights()))\n"
    )
    result = _run(["-c", code], hf_env(hub_server, tmp_path / "fresh_home", token=None))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "SHAPE (1, 21, 19, 3)" in result.stdout
    expected = sum(float(np.abs(w).sum()) for w in keras.saving.load_model(pushed / "model.keras").get_weights())
    (weights,) = re.findall(r"WEIGHTS (\S+)", result.stdout)
    assert float(weights) == pytest.approx(expected, rel=1e-6)


def test_model_card_without_metrics_still_renders():
    from huggingface_hub import ModelCard

    from srmodel.modelcard import render_model_card

    card = ModelCard(render_model_card({"architecture": {"name": "default"}}, {}))
    assert card.data.library_name == "keras" and not card.data.eval_results
    assert "No validation metrics" in card.text


# train.py ---------------------------------------------------------------------------------------

TRAIN = REPO_ROOT / "train.py"
needs_train = pytest.mark.skipif(not TRAIN.exists(), reason="train.py is not written yet")


@needs_train
def test_train_push_without_token_fails_fast_before_reading_data(hub_server, fake_hub, tmp_path):
    env = hf_env(hub_server, tmp_path / "home", token=None)
    start = time.monotonic()
    result = _run([str(TRAIN), "--data", str(tmp_path / "no_such_data"), "--epochs", "1", "--out",
                   str(tmp_path / "out"), "--push", "--repo-id", "alice/x"], env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - start < 60  # mostly Python start-up; no data is read, no model is built
    assert "No Hugging Face token found" in result.stderr and "hf auth login" in result.stderr
    assert "no_such_data" not in result.stderr
    assert not (tmp_path / "out").exists()


@needs_train
def test_train_push_publishes_all_files(hub_server, fake_hub, tmp_path):
    from PIL import Image

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray((rng.random((48, 48, 3)) * 255).astype(np.uint8)).save(data / f"img{i:02d}.png")
    home = tmp_path / "home"
    result = _run([str(TRAIN), "--data", str(data), "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2",
                   "--patch-size", "32", "--out", str(tmp_path / "out"), "--push", "--repo-id", "alice/trained",
                   "--revision", "run1"], hf_env(hub_server, home), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(FOLDER_FILES) <= set(fake_hub.files("alice/trained", "run1"))
    assert f"{hub_server}/alice/trained/tree/run1" in result.stdout
    _no_token_in(result.stdout, result.stderr)
    _no_token_in_files(tmp_path / "out")
    _no_token_in_files(home)


def test_train_push_that_fails_after_training_keeps_the_folder_and_says_how_to_retry(tmp_path, monkeypatch, capsys):
    import train
    from srmodel import hub, training

    folder = tmp_path / "my run"  # a space: the retry command must still paste into a shell

    def refuse(*args, **kwargs):
        raise hub.PushError("Uploading to alice/x failed (HTTP 500): boom")

    monkeypatch.setattr(hub, "check_write_access", lambda repo_id: "alice")
    monkeypatch.setattr(training, "train", lambda settings, resume=False: folder)
    monkeypatch.setattr(hub, "push_folder", refuse)
    assert train.main(["--data", "x", "--out", str(folder), "--push", "--repo-id", "alice/x", "--private"]) == 2
    err = capsys.readouterr().err
    assert "HTTP 500): boom" in err and f"The trained model is kept in {folder}" in err
    assert f"python -m srmodel push '{folder}' --repo-id alice/x --private" in err


def test_unreachable_hub_fails_fast_with_clear_errors(hub_server, fake_hub, model_folder):
    from srmodel.hub import PushError, check_write_access, push_folder

    fake_hub.stop()
    start = time.monotonic()
    with pytest.raises(HubAuthError, match="Could not reach the Hugging Face Hub"):
        check_write_access("alice/faces")
    with pytest.raises(PushError, match="nothing was pushed|failed"):
        push_folder(model_folder, "alice/faces")
    assert time.monotonic() - start < 30


@pytest.fixture
def silent_hub():
    """A server that accepts connections and never answers: huggingface_hub alone would wait forever."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for connection in held:
        connection.close()


def test_a_hub_that_never_answers_is_given_up_on(hub_server, fake_hub, model_folder, silent_hub, tmp_path,
                                                 monkeypatch):
    from huggingface_hub import constants
    from huggingface_hub.utils import close_session, get_session

    from srmodel import hub
    from srmodel.hub import PushError, check_write_access, load_enhancer, push_folder

    push_folder(model_folder, "alice/faces")
    sha = fake_hub.repos["alice/faces"].branches["main"]
    assert load_enhancer("alice/faces").info["revision"] == sha  # now in the cache
    point_hf_at(monkeypatch, silent_hub, Path(constants.HF_HOME), WRITE_TOKEN)
    monkeypatch.setenv("SRMODEL_HUB_TIMEOUT", "2")
    close_session()  # as huggingface_hub does after a connection error, even within one call
    assert hub._limit_unbounded_waits in get_session().event_hooks["request"]  # ... and its next client is bounded
    start = time.monotonic()
    assert load_enhancer("alice/faces").info["revision"] == sha  # the cached copy, after the wait
    with pytest.raises(ModelLoadError, match="Could not reach the Hugging Face Hub"):
        load_enhancer("alice/other")
    with pytest.raises(HubAuthError, match="Could not reach the Hugging Face Hub"):
        check_write_access("alice/faces")
    with pytest.raises(PushError):
        push_folder(model_folder, "alice/faces")
    assert time.monotonic() - start < 60
