"""Runs `app.py` as a real server for the demo tests, with a tiny model and a free port.

The model is made in a child process so the test process never imports TensorFlow; its last
convolution is zeroed, so (thanks to the global residual) it returns its input: results are
predictable and screenshots look like photos rather than noise.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
STARTUP_TIMEOUT_S = float(os.environ.get("SR_TEST_STARTUP_TIMEOUT", "300"))

_MAKE_MODEL = """
import sys
sys.path[:0] = [sys.argv[2], sys.argv[3]]
import keras, numpy as np
from conftest import make_model_folder
from srmodel.folder import MODEL_FILE, atomic_save_model
folder = make_model_folder(sys.argv[1])
model = keras.saving.load_model(folder / MODEL_FILE, compile=False)
tail = model.get_layer("tail")
tail.set_weights([np.zeros_like(w) for w in tail.get_weights()])
atomic_save_model(model, folder / MODEL_FILE)
"""


def quiet_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: offline, no telemetry, CPU only, little log noise."""
    env = dict(os.environ)
    env.update(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
               CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", **extra)
    for key in ("SR_MODEL", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "SR_MAX_MEGAPIXELS", "SRMODEL_PRECISION"):
        env.pop(key, None)
    return env


def make_identity_model(folder: Path) -> Path:
    """A small model folder whose network returns its input (see the module docstring)."""
    subprocess.run([sys.executable, "-c", _MAKE_MODEL, str(folder), str(TESTS_DIR), str(REPO_ROOT)],
                   check=True, env=quiet_env(), cwd=REPO_ROOT, timeout=STARTUP_TIMEOUT_S)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DemoServer:
    """`python app.py ...` on 127.0.0.1:<free port>; always stop() it (the fixtures do)."""

    def __init__(self, model: Path | str, log_path: Path, *extra_args: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_path
        args = [sys.executable, str(REPO_ROOT / "app.py"), "--model", str(model),
                "--host", "127.0.0.1", "--port", str(self.port), *extra_args]
        self._log = open(log_path, "wb")  # noqa: SIM115  (closed in stop())
        self.process = subprocess.Popen(args, cwd=REPO_ROOT, stdout=self._log,
                                        stderr=subprocess.STDOUT, env=quiet_env(**(env or {})))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1.0)
        raise TimeoutError(f"app.py did not answer on {self.url} within {timeout:.0f} s:\n{self.log()}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        self._log.close()


def start_server(tmp_dir: Path, *extra_args: str, env: dict[str, str] | None = None) -> DemoServer:
    """Makes the tiny model and starts a server in `tmp_dir`; stops it again if start-up fails."""
    model = make_identity_model(tmp_dir / "model")
    server = DemoServer(model, tmp_dir / "app.log", *extra_args, env=env)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server
