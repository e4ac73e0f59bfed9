"""``lgrn train``: train a model (release options plus ``--set key=value``; docs/training.md)."""
from __future__ import annotations

import argparse

from ._experiment import TRAIN, add_training_options, run

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lgrn train", description="train a landmark model")
    parser.add_argument("--config", required=True, help="YAML config (release layout), e.g. "
                        "experiments/300W/config_mobilenet.yaml")
    parser.add_argument("--expname", required=True, help="experiment folder for checkpoints, logs and reports "
                        "(created with parents)")
    add_training_options(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``lgrn train --config CFG --expname DIR [--load_path CKPT] [--resume] [--set k=v ...]``."""
    return run(build_parser().parse_args(argv), TRAIN)
