"""Web demo: pixelate an image, enhance it with an srmodel model, compare with the original.

Runs unchanged as a Hugging Face Space (`python app.py`). Options (flags win over environment):
  --model / SR_MODEL                   Hub repo id `user/name[@rev]` or a model folder (default: bundled)
  --host  / GRADIO_SERVER_NAME         default 127.0.0.1
  --port  / GRADIO_SERVER_PORT         default 7860
  --max-megapixels / SR_MAX_MEGAPIXELS largest accepted image, default 40
  --concurrency / SR_CONCURRENCY       requests processed at once, default 2
  --precision / SRMODEL_PRECISION      auto (bfloat16 where the CPU computes it natively), float32 or bfloat16
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quiet TensorFlow start-up logs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description="srmodel web demo (Gradio).")
    parser.add_argument("--model", default=env.get("SR_MODEL") or None,
                        help="Hub repo id user/name[@revision] or a model folder; default: the bundled model")
    parser.add_argument("--host", default=env.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    # String defaults go through `type` too, so a bad environment value gets argparse's clear message.
    parser.add_argument("--port", type=int, default=env.get("GRADIO_SERVER_PORT", "7860"))
    parser.add_argument("--max-megapixels", type=float, default=env.get("SR_MAX_MEGAPIXELS", "40"),
                        help="reject larger images with a clear message (default 40)")
    parser.add_argument("--concurrency", type=int, default=env.get("SR_CONCURRENCY", "2"),
                        help="how many pixelate/enhance requests run at once (default 2)")
    parser.add_argument("--precision", default=env.get("SRMODEL_PRECISION") or "auto",
                        help="compute precision: auto, float32 or bfloat16 (default auto: bfloat16 on CPUs with "
                             "native bfloat16 instructions, about 2x faster)")
    args = parser.parse_args(argv)
    if args.precision not in ("auto", "float32", "bfloat16"):
        parser.error(f"--precision must be auto, float32 or bfloat16, got {args.precision!r}")
    if args.max_megapixels <= 0:
        parser.error(f"--max-megapixels must be > 0, got {args.max_megapixels}")
    if not 1 <= args.port <= 65535:
        parser.error(f"--port (or GRADIO_SERVER_PORT) must be in 1..65535, got {args.port}")
    if args.concurrency < 1:
        parser.error(f"--concurrency must be >= 1, got {args.concurrency}")
    return args


def port_problem(host: str, port: int) -> str | None:
    """Why the demo could not listen on host:port, or None. Checked before the model loads (tens of seconds)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.bind(address)
    except OSError as exc:
        return (f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass --port (or set "
                "GRADIO_SERVER_PORT) with a free port, e.g. --port 7861")
    return None


def _stop_like_ctrl_c(signum: int, frame: object) -> None:
    """`kill PID` (and a Space restart) then stops the server as Ctrl-C does, so exit clean-up still runs."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for client in ("httpx", "httpx2"):  # one line per request otherwise (huggingface_hub 2 uses httpx2)
        logging.getLogger(client).setLevel(logging.WARNING)
    args = parse_args(argv)
    problem = port_problem(args.host, args.port)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from srmodel.demo import CSS, build_demo, load_serving_model
    from srmodel.errors import ModelLoadError

    try:
        serving = load_serving_model(args.model, args.precision)
    except ModelLoadError as exc:
        print(f"error: could not load any model: {exc}", file=sys.stderr)
        return 1
    demo = build_demo(serving, max_megapixels=args.max_megapixels, concurrency_limit=args.concurrency)
    signal.signal(signal.SIGTERM, _stop_like_ctrl_c)
    try:
        demo.launch(server_name=args.host, server_port=args.port, css=CSS,
                    max_file_size="512mb", show_error=False)
    except OSError as exc:  # The port was taken while the model loaded.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
