"""Publishing model folders to the Hugging Face Hub and loading enhancers from the Hub or disk.

Every Hub call goes through `huggingface_hub`, so its token lookup (`HF_TOKEN`, `hf auth login`), cache
(`HF_HOME`) and `HF_HUB_OFFLINE` behave as users expect. Failures become `HubAuthError`, `PushError` or
`ModelLoadError` with messages a person can act on; tokens never appear in any message.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srmodel.errors import HubAuthError, ModelLoadError, SRModelError
from srmodel.folder import (
    BUNDLED_MODEL_DIR,
    CONFIG_FILE,
    FOLDER_FILES,
    METRICS_FILE,
    MODEL_FILE,
    load_model_folder,
    read_json,
    validate_config,
)
from srmodel.modelcard import PLACEHOLDER_REPO

if TYPE_CHECKING:
    from srmodel.inference import Enhancer

LOGIN_HINT = "Log in with `hf auth login`, or set HF_TOKEN=hf_... (create a token at https://huggingface.co/settings/tokens)."
DOWNLOAD_FILES = [MODEL_FILE, CONFIG_FILE, METRICS_FILE]
_REPO_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[^\s@]+))?$")
# HTTP statuses of the Hub's answers to the model API during one `_download` (None outside one): huggingface_hub
# quietly falls back to a cached copy when the Hub refuses, and a refusal is worth saying.
_REFUSALS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("srmodel_hub_refusals", default=None)
log = logging.getLogger("srmodel.hub")


class PushError(SRModelError):
    """Uploading a model folder to the Hub failed for a reason other than authentication."""


def _hub_timeout_s() -> float:
    """Seconds any one Hub request may wait for the network: $SRMODEL_HUB_TIMEOUT, default 30."""
    text = os.environ.get("SRMODEL_HUB_TIMEOUT", "30")
    try:
        value = float(text)
    except ValueError:
        raise SRModelError(f"SRMODEL_HUB_TIMEOUT must be a number of seconds. Received: {text!r}") from None
    if not value > 0:
        raise SRModelError(f"SRMODEL_HUB_TIMEOUT must be > 0 seconds. Received: {text!r}")
    return value


def _bound_hub_waits() -> None:
    """huggingface_hub's HTTP clients wait forever by default (its calls pass timeout=None), so a Hub that
    accepts a connection and never answers would hang the demo's start-up, `enhance --model` and `--push`
    for good. Every client it makes from now on gets a request hook that gives each unbounded wait a limit.

    The hook goes on the client factory, not on one client: huggingface_hub makes a new client after a
    connection error (`close_session`), and that one must be bounded too.
    """
    from huggingface_hub.utils import _http, get_session, set_client_factory

    factory = getattr(_http, "_GLOBAL_CLIENT_FACTORY", None)  # the default one, or one the user set
    if factory is None:  # another huggingface_hub layout: bound the current client at least
        _add_wait_limits(get_session())
        return
    if getattr(factory, "_srmodel_bounded", False):
        return

    def bounded_client_factory():
        return _add_wait_limits(factory())

    bounded_client_factory._srmodel_bounded = True
    set_client_factory(bounded_client_factory)


def _add_wait_limits(client: Any) -> Any:
    hooks = client.event_hooks
    if _limit_unbounded_waits not in hooks["request"]:
        client.event_hooks = {**hooks, "request": [*hooks["request"], _limit_unbounded_waits],
                              "response": [*hooks.get("response", []), _note_refusal]}
    return client


def _note_refusal(response: Any) -> None:
    seen = _REFUSALS.get()
    if seen is not None and response.status_code >= 400 and "/api/models/" in str(response.request.url.path):
        seen.append(response.status_code)


def _limit_unbounded_waits(request: Any) -> None:
    seconds = _hub_timeout_s()
    limits = dict(request.extensions.get("timeout") or {})
    for kind in ("connect", "read", "write", "pool"):
        if limits.get(kind) is None:
            limits[kind] = min(10.0, seconds) if kind == "connect" else seconds
    request.extensions["timeout"] = limits


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _namespace(repo_id: str) -> str:
    """The owner of a repo id that the Hub will accept, checked by huggingface_hub's own rules before any upload."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo_id):
        raise HubAuthError(f"A Hub repo id looks like 'user/name' or 'org/name'. Received: {repo_id!r}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise HubAuthError(f"Not a valid Hub repo id: {exc}") from None
    return repo_id.split("/")[0]


def _find_token(token: str | None) -> str:
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise HubAuthError(f"No Hugging Face token found, so nothing can be pushed. {LOGIN_HINT}")
    return token


def _can_write(auth: dict, namespace: str, repo_id: str) -> bool:
    """Reads the token role from whoami; fine-grained tokens pass unless they clearly lack `repo.write`."""
    access = auth.get("accessToken") if isinstance(auth, dict) else None
    role = access.get("role") if isinstance(access, dict) else None
    if role == "read":
        return False
    if role != "fineGrained":
        return True  # "write", or an unknown/absent role (e.g. OAuth): let the Hub decide at upload time
    fine = access.get("fineGrained") or {}
    scoped = [s for s in fine.get("scoped") or [] if isinstance(s, dict)]
    relevant = [s for s in scoped if (s.get("entity") or {}).get("name") in (namespace, repo_id)]
    if any("repo.write" in (s.get("permissions") or []) for s in relevant):
        return True
    if any("repo.write" in str(g) for g in fine.get("global") or []):
        return True
    return not scoped  # no scope details at all: unclear, so let the Hub decide at upload time


def check_write_access(repo_id: str, token: str | None = None) -> str:
    """Fails fast (one whoami call) if we cannot push to `repo_id`, before hours of training. Returns the user name."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    namespace = _namespace(repo_id)
    token = _find_token(token)
    _bound_hub_waits()
    try:
        info = HfApi(token=token).whoami(token=token)
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            raise HubAuthError(f"The Hugging Face token was rejected (invalid or expired). {LOGIN_HINT}") from None
        raise HubAuthError(f"Could not check your Hugging Face token at {_endpoint()} (HTTP {status}).") from None
    except OSError as exc:  # httpx connection errors, timeouts, offline mode
        raise HubAuthError(
            f"Could not reach the Hugging Face Hub at {_endpoint()} to check your token "
            f"({type(exc).__name__}). Check your connection, or unset HF_HUB_OFFLINE."
        ) from None
    except Exception as exc:
        if type(exc).__module__.startswith(("httpx", "httpcore")):
            raise HubAuthError(
                f"Could not reach the Hugging Face Hub at {_endpoint()} to check your token ({type(exc).__name__})."
            ) from None
        raise
    user = info.get("name", "?")
    orgs = [org.get("name") for org in info.get("orgs") or [] if isinstance(org, dict)]
    if namespace != user and namespace not in orgs:
        usable = " or ".join(repr(f"{name}/NAME") for name in [user, *orgs])
        raise HubAuthError(
            f"Your token belongs to {user!r}, who is not a member of {namespace!r}, so it cannot push to "
            f"{repo_id}. Use a repo id like {usable}, or log in as another user. {LOGIN_HINT}"
        )
    if not _can_write(info.get("auth") or {}, namespace, repo_id):
        raise HubAuthError(
            f"Your token for {user!r} cannot write to {repo_id}: it is read-only, or fine-grained without "
            f"write access to {namespace!r}. Create a token with write access. {LOGIN_HINT}"
        )
    return user


def default_commit_message(config: dict, metrics: dict) -> str:
    """E.g. "Upload srmodel default (val PSNR 31.20 dB)": the commit list then tells versions apart."""
    name = (config.get("architecture") or {}).get("name", "model")
    psnr = ((metrics.get("validation") or {}).get("model") or {}).get("psnr")
    if isinstance(psnr, (int, float)):
        return f"Upload srmodel {name} (val PSNR {psnr:.2f} dB)"
    return f"Upload srmodel {name}"


def validate_folder(folder: str | os.PathLike) -> tuple[Path, dict, dict]:
    """Checks a folder is pushable (model.keras + a valid config.json) without touching the network."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"Model folder not found. Received: {str(folder)!r}")
    if not (folder / MODEL_FILE).is_file():
        raise ModelLoadError(f"Missing {MODEL_FILE} in model folder {folder}; train a model or pick another folder.")
    config = validate_config(read_json(folder / CONFIG_FILE), where=str(folder / CONFIG_FILE))
    metrics = read_json(folder / METRICS_FILE) if (folder / METRICS_FILE).is_file() else {}
    return folder, config, metrics if isinstance(metrics, dict) else {}


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Uploads the model folder's files to `repo_id` in one commit (creating repo/branch if needed); returns the URL."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    folder, config, metrics = validate_folder(folder)
    _namespace(repo_id)
    token = _find_token(token)
    _bound_hub_waits()
    api = HfApi(token=token)
    names = [name for name in FOLDER_FILES if (folder / name).is_file()]
    message = commit_message or default_commit_message(config, metrics)
    try:
        repo_url = str(api.create_repo(repo_id, private=private or None, exist_ok=True, repo_type="model"))
        if private and not api.repo_info(repo_id, repo_type="model").private:
            print(f"note: {repo_id} already existed and is public: --private only applies to a repo it creates. "
                  "Change its visibility in the repo's settings on the Hub.", file=sys.stderr)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        api.create_commit(
            repo_id,
            operations=[
                CommitOperationAdd(path_in_repo=n, path_or_fileobj=_upload_source(folder / n, repo_id, config, metrics,
                                                                                  revision))
                for n in names
            ],
            commit_message=message,
            revision=revision,
            repo_type="model",
        )
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise HubAuthError(
                f"The Hub refused to let this token write to {repo_id} (HTTP {status}). {LOGIN_HINT}"
            ) from None
        if status == 404:
            raise HubAuthError(
                f"{repo_id} was not found on the Hub after creating it; the token may lack access to it. {LOGIN_HINT}"
            ) from None
        raise PushError(f"Uploading to {repo_id} failed (HTTP {status}): {_first_line(exc)}") from None
    except OSError as exc:
        raise PushError(f"Uploading to {repo_id} failed ({type(exc).__name__}: {_first_line(exc)}).") from None
    except ValueError as exc:  # e.g. the Hub rejected README.md's metadata
        raise PushError(f"The Hub refused the upload to {repo_id}: {exc}") from None
    except Exception as exc:
        if type(exc).__module__.startswith(("httpx", "httpcore")):
            raise PushError(
                f"Could not reach the Hugging Face Hub at {_endpoint()} ({type(exc).__name__}); nothing was pushed."
            ) from None
        raise
    return f"{repo_url.rstrip('/')}/tree/{revision}" if revision else repo_url


PATH_SETTINGS = ("data", "exclude", "init_from", "teacher")  # config["training"] entries that name local files


def public_config(config: dict) -> dict:
    """The config as the Hub should see it: absolute local paths (which name the user's home folder) cut to
    their last part. The local config.json keeps them, since `bench/validation.py` rebuilds the split from it."""
    def public(value: Any) -> Any:
        if isinstance(value, list):
            return [public(item) for item in value]
        if isinstance(value, str) and (os.path.isabs(value) or value.startswith("~")):
            return Path(value).name or value
        return value

    training = config.get("training")
    if not isinstance(training, dict):
        return config
    return {**config, "training": {**training, **{k: public(training[k]) for k in PATH_SETTINGS if k in training}}}


def _upload_source(path: Path, repo_id: str, config: dict, metrics: dict, revision: str | None = None) -> str | bytes:
    """What to upload for a folder file: the card and config made for the repo, anything else as is.

    The card was written before the repo was known. One as srmodel wrote it is written again for the repo (its
    title and usage snippets name it, and the branch it goes to); in a hand-edited one only the "USER/NAME"
    placeholder changes. Neither the config nor a regenerated card shows absolute local paths (`public_config`).
    """
    public = public_config(config)
    if path.name == "README.md":
        from srmodel.modelcard import is_rendered_card, render_model_card

        text = path.read_text(encoding="utf-8")
        if is_rendered_card(text, config, metrics):
            return render_model_card(public, metrics, repo_id, revision).encode("utf-8")
        if PLACEHOLDER_REPO in text:
            return text.replace(PLACEHOLDER_REPO, repo_id).encode("utf-8")
    if path.name == CONFIG_FILE and public != config:
        return (json.dumps(public, indent=2) + "\n").encode("utf-8")
    return str(path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def parse_source(source: str) -> tuple[str, str | None]:
    """Splits "user/name@revision" into (repo_id, revision), raising `ModelLoadError` when it is neither."""
    match = _REPO_ID.match(source)
    if not match:
        raise ModelLoadError(
            "Expected a local model folder or a Hub repo id like 'user/name' or 'user/name@revision'. "
            f"Received: {source!r}"
        )
    return match["repo"], match["rev"]


def _download(repo_id: str, revision: str | None) -> Path:
    """Fetches only the files loading needs into the normal HF cache, turning every failure into `ModelLoadError`."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision}" if revision else repo_id
    _bound_hub_waits()
    refusals: list[int] = []
    context = _REFUSALS.set(refusals)
    try:
        snapshot = Path(
            snapshot_download(repo_id, revision=revision, repo_type="model", allow_patterns=DOWNLOAD_FILES)
        )
        if refusals:
            log.warning(
                "The Hub refused the request for %s (HTTP %s); using the copy in the local cache (commit %s). If the "
                "repo was deleted or your access revoked, that copy is all that is left.",
                where, refusals[-1], snapshot.name[:12],
            )
        return snapshot
    except RevisionNotFoundError:
        raise ModelLoadError(
            f"Revision {revision!r} does not exist in {repo_id} on the Hub. Use a branch, tag or commit sha of that "
            "repo, or leave out '@...' for the latest version."
        ) from None
    except RepositoryNotFoundError:
        raise ModelLoadError(
            f"Model {repo_id} was not found on the Hub ({_endpoint()}), and no local folder of that name exists. "
            f"Check the name; if it is private, log in with an account that can read it. {LOGIN_HINT}"
        ) from None
    except HFValidationError as exc:
        raise ModelLoadError(f"{where!r} is not a valid Hub repo id ({_first_line(exc)}).") from None
    except LocalEntryNotFoundError:
        if constants.HF_HUB_OFFLINE:
            raise ModelLoadError(
                f"HF_HUB_OFFLINE is set and {where} is not in the local cache ({constants.HF_HUB_CACHE}). "
                "Unset HF_HUB_OFFLINE to download it, or load it once while online."
            ) from None
        raise ModelLoadError(
            f"Could not reach the Hugging Face Hub at {_endpoint()} to download {where}, and it is not in the "
            "local cache. Check your internet connection (or HF_ENDPOINT) and try again."
        ) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            raise ModelLoadError(
                f"The Hub rejected your Hugging Face token (invalid or expired) while downloading {where}. "
                f"Fix or remove HF_TOKEN / your saved login. {LOGIN_HINT}"
            ) from None
        if status == 403:
            raise ModelLoadError(f"Your token may not read {where} (HTTP 403). {LOGIN_HINT}") from None
        raise ModelLoadError(f"Downloading {where} failed (HTTP {status}): {_first_line(exc)}") from None
    except OSError as exc:
        raise ModelLoadError(f"Downloading {where} failed ({type(exc).__name__}: {_first_line(exc)}).") from None
    except Exception as exc:
        if type(exc).__module__.startswith(("httpx", "httpcore")):
            raise ModelLoadError(
                f"Could not reach the Hugging Face Hub at {_endpoint()} while downloading {where} "
                f"({type(exc).__name__}). Check your connection and try again."
            ) from None
        raise
    finally:
        _REFUSALS.reset(context)


def load_parts(source: str | None = None) -> tuple[Any, dict, dict, dict]:
    """Resolves `source` and loads (model, config, metrics, info); see `load_enhancer`."""
    if source == "bundled":  # as train.py's --init-from and --teacher take it; a folder of that name: "./bundled"
        source = None
    if source is None:
        if not (BUNDLED_MODEL_DIR / MODEL_FILE).is_file():
            raise ModelLoadError(
                f"The bundled model is missing from {BUNDLED_MODEL_DIR}; reinstall srmodel, or pass a model "
                "folder or Hub repo id to load_enhancer(...)."
            )
        model, config, metrics = load_model_folder(BUNDLED_MODEL_DIR)
        info = {"source": "bundled", "path": str(BUNDLED_MODEL_DIR)}
    elif not isinstance(source, (str, os.PathLike)):
        raise ModelLoadError(f"Expected a folder path or Hub repo id. Received: {type(source).__name__}")
    elif Path(source).expanduser().is_dir():
        path = Path(source).expanduser().resolve()
        model, config, metrics = load_model_folder(path)
        info = {"source": "local", "path": str(path)}
    else:
        source = os.fspath(source)
        if not _REPO_ID.match(source) and (os.sep in source or source.startswith((".", "~"))):
            raise ModelLoadError(f"Model folder not found. Received: {source!r}")
        repo_id, revision = parse_source(source)
        snapshot = _download(repo_id, revision)
        missing = [name for name in (MODEL_FILE, CONFIG_FILE) if not (snapshot / name).is_file()]
        if missing:
            raise ModelLoadError(
                f"{repo_id} on the Hub is not an srmodel model: it has no {' or '.join(missing)}. "
                f"Received files: {sorted(p.name for p in snapshot.iterdir()) if snapshot.is_dir() else []}"
            )
        try:
            model, config, metrics = load_model_folder(snapshot)
        except ModelLoadError as exc:
            raise ModelLoadError(f"{repo_id} (commit {snapshot.name}): {exc}") from None
        info = {"source": "hub", "repo_id": repo_id, "revision": snapshot.name, "requested_revision": revision}
    info["architecture"] = config["architecture"]["name"]
    info["metrics"] = metrics
    return model, config, metrics, info


def load_enhancer(source: str | None = None, precision: str | None = None) -> Enhancer:
    """Loads an `Enhancer` from the bundled model (None or "bundled"), a local folder, or a Hub repo 'user/name[@revision]'.

    Hub downloads fetch only model.keras, config.json and metrics.json into the normal HF cache, so later
    loads and `HF_HUB_OFFLINE=1` work without the network. Any failure raises `ModelLoadError`.
    `precision`: see `Enhancer` ("auto", "float32", "bfloat16"; None reads $SRMODEL_PRECISION).
    """
    from srmodel.inference import Enhancer

    model, config, metrics, info = load_parts(source)
    return Enhancer(model, config=config, metrics=metrics, info=info, precision=precision)
