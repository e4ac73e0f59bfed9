"""``lgrn main``: the release's ``main.py`` command line, every flag as released (docs/training.md,
"Command line"); ``python main.py ...`` in the repository root runs this."""
from __future__ import annotations

import argparse

from ._experiment import EVAL_CKPTS, EVALUATE, TRAIN, add_training_options, run

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description="L-GRN training / evaluation (release CLI)")
    parser.add_argument("--config", required=True, help="YAML config (release layout)")
    parser.add_argument("--expname", required=True, help="experiment folder (created with parents)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--train", action="store_true", help="train with the config; checkpoints and logs in EXPNAME")
    mode.add_argument("--evaluate", action="store_true",
                      help="evaluate --load_path on the config's test set; reports in EXPNAME")
    mode.add_argument("--eval_ckpts", "--eval-ckpts", dest="eval_ckpts", action="store_true",
                      help="evaluate every checkpoint_<epoch>.pth.tar (+ latest, best) in EXPNAME -> ckpts.csv")
    add_training_options(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python main.py --config CFG --expname DIR (--train | --evaluate | --eval_ckpts) ...``."""
    args = build_parser().parse_args(argv)
    return run(args, TRAIN if args.train else EVALUATE if args.evaluate else EVAL_CKPTS)
