"""`lgrn serve [--checkpoint CKPT] [--host 127.0.0.1] [--port 8000] ...`: landmarks over HTTP
(POST /v1/landmarks) with a web page to drop photos on; parses the options and calls
:func:`lgrn.serve.run_server` (docs/inference.md)."""
from __future__ import annotations

import argparse
import importlib.util
import sys

from ..serve import DEFAULT_MAX_UPLOAD_MB, run_server

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lgrn serve", description="Landmarks over HTTP: POST /v1/landmarks, "
                                     "GET /healthz, and a web page at / to drop a photo on.")
    parser.add_argument("--checkpoint", help="lgrn checkpoint or .onnx model (default: the shipped 68-point model)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine "
                        "only; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                        help=f"largest accepted upload in MiB (default {DEFAULT_MAX_UPLOAD_MB:g})")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads")
    parser.add_argument("--detector", default="auto", choices=("auto", "retinaface", "haar"))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port must lie in 1..65535, got {args.port}")
    if not args.max_upload_mb > 0:
        parser.error(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    missing = [m for m in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"lgrn serve: error: {', '.join(missing)} not installed: pip install 'lgrn[serve]'", file=sys.stderr)
        return 2
    try:
        run_server(args.checkpoint, args.host, args.port, args.max_upload_mb, args.device, args.threads,
                   args.detector)
    except (FileNotFoundError, ValueError) as exc:
        print(f"lgrn serve: error: {exc}", file=sys.stderr)
        return 1
    return 0
