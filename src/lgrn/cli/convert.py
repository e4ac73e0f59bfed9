"""`lgrn convert-checkpoint IN OUT --config CFG [--set key=value ...]`: convert an authors' checkpoint to
lgrn's layout (docs/models.md, "Converting the authors' checkpoints"). Parses argv, then calls
:func:`lgrn.models.loading.convert_checkpoint_file` and :func:`lgrn.checkpoint.save_checkpoint`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._version import __version__
from ..checkpoint import CheckpointError, save_checkpoint
from ..config import ConfigError, load_config
from ..models.loading import convert_checkpoint_file


def build_parser() -> argparse.ArgumentParser:
    """The options of ``lgrn convert-checkpoint``."""
    parser = argparse.ArgumentParser(prog="lgrn convert-checkpoint",
                                     description="Convert a checkpoint saved by the authors' code (ResNet34Pure + "
                                                 "BaseGCNPredictor or FCPredictor) into an lgrn checkpoint.")
    parser.add_argument("input", help="authors' checkpoint (.pth.tar, with or without the 'module.' prefix)")
    parser.add_argument("output", help="lgrn checkpoint to write")
    parser.add_argument("--config", required=True, help="the YAML the checkpoint was trained with")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Convert ``input`` into ``output``; 0 on success, 1 (message on stderr) when it cannot, 2 for bad options."""
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config, overrides=args.set)
        result = convert_checkpoint_file(args.input, config, lgrn_version=__version__)
        save_checkpoint(args.output, result.checkpoint)
    except (ValueError, FileNotFoundError, ConfigError, CheckpointError) as exc:
        print(f"lgrn convert-checkpoint: error: {exc}", file=sys.stderr)
        return 1
    structure = config["structure"]
    print(f"converted {result.num_tensors} tensors from {args.input} (dropped unused {result.dropped}) -> "
          f"{Path(args.output)} [{structure['predictor_name']}, {structure['num_kpts']} landmarks]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
