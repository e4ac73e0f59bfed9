"""`lgrn <subcommand>`: a thin table from subcommand names to library entry points.

Each entry point is ``module:function`` taking ``argv: list[str]`` and returning an exit code; the
module is imported only when its subcommand runs.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("lgrn.engine.commands:train_main", "train a model (release options plus --set key=value)"),
    "evaluate": ("lgrn.engine.commands:evaluate_main", "evaluate a checkpoint or ONNX model and write reports"),
    "main": ("lgrn.engine.commands:release_main", "the release's main.py command line"),
    "prepare": ("lgrn.data.prepare:main", "official WFLW / 300W / COFW releases -> processed crops + lists"),
    "synth": ("lgrn.data.synthetic:main", "write a synthetic face dataset in the processed format"),
    "graph": ("lgrn.landmarks.cli:graph_main", "derive a top-k landmark graph from annotations"),
    "convert-checkpoint": ("lgrn.models.convert:main", "convert an authors' checkpoint to lgrn's layout"),
    "predict": ("lgrn.predict:main", "landmarks for an image, a folder or a video"),
    "export": ("lgrn.export:main", "export a checkpoint to ONNX (optionally int8)"),
    "bench": ("lgrn.bench:main", "benchmark inference, training and data throughput"),
    "serve": ("lgrn.serve:main", "landmarks over HTTP (POST /v1/landmarks) with a web page to drop photos on"),
    "demo": ("lgrn.engine.demo:main", "train L-GRN and the FC baseline on synthetic faces and compare"),
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
        from . import __version__
        print(f"lgrn {__version__}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"lgrn: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func_name = COMMANDS[name][0].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    return int(func(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
