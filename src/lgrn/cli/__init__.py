"""`lgrn <subcommand>`: the command table.

Every subcommand is one module of this package with ``main(argv: list[str]) -> int``: it parses its
options and calls typed library functions (nothing below ``lgrn.cli`` parses argv). A new subcommand is
one module here plus one row in ``COMMANDS``. A command's module is imported only when it runs, so
``lgrn --help`` stays fast.
"""
from __future__ import annotations

import importlib
import sys

from .._version import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    # name: (module of lgrn.cli, one-line help)
    "train": ("train", "train a model (release options plus --set key=value)"),
    "evaluate": ("evaluate", "evaluate a checkpoint or ONNX model and write reports"),
    "main": ("release", "the release's main.py command line"),
    "prepare": ("prepare", "official WFLW / 300W / COFW releases -> processed crops + lists"),
    "synth": ("synth", "write a synthetic face dataset in the processed format"),
    "graph": ("graph", "derive a top-k landmark graph from annotations"),
    "convert-checkpoint": ("convert", "convert an authors' checkpoint to lgrn's layout"),
    "predict": ("predict", "landmarks for an image, a folder or a video"),
    "export": ("export", "export a checkpoint to ONNX (optionally int8)"),
    "bench": ("bench", "benchmark inference, training and data throughput"),
    "serve": ("serve", "landmarks over HTTP (POST /v1/landmarks) with a web page to drop photos on"),
    "demo": ("demo", "train L-GRN and the FC baseline on synthetic faces and compare"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: lgrn <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `lgrn <command> --help` for the options of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"lgrn {__version__}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"lgrn: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"lgrn.cli.{COMMANDS[name][0]}")
    return int(module.main(argv[1:]) or 0)

