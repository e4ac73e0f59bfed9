"""``lgrn evaluate``: evaluate a checkpoint or ONNX model and write reports (docs/training.md,
"Command line"). Only evaluation options: the training ones (``--resume``, ``--keep-snapshots``,
``--record-indices``) belong to ``lgrn train`` / ``lgrn main``."""
from __future__ import annotations

import argparse

from ._experiment import EVAL_CKPTS, EVALUATE, add_load_path, add_no_progress, add_visualize_and_set, run

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lgrn evaluate", description="evaluate a checkpoint or an ONNX model")
    parser.add_argument("--config", default=None, help="config for the test data (default: the checkpoint's)")
    parser.add_argument("--expname", required=True, help="folder for the reports")
    parser.add_argument("--eval_ckpts", "--eval-ckpts", dest="eval_ckpts", action="store_true",
                        help="evaluate every checkpoint_<epoch>.pth.tar (+ latest, best) in EXPNAME -> ckpts.csv")
    parser.add_argument("--model", "--checkpoint", dest="model", default=None, help="alias of --load_path")
    parser.add_argument("--crops", choices=("gt", "detector"), default="gt",
                        help="gt (default): crops from the ground-truth landmark box, as the papers; detector: "
                        "also find each face with the default face detector in its original image and crop from "
                        "that box, as `lgrn predict` does (needs --images-root); both NMEs are reported")
    parser.add_argument("--images-root", default=None,
                        help="with --crops detector: the folder given to `lgrn prepare --root` (the originals named "
                        "in the test list's *_crops.jsonl)")
    add_load_path(parser)
    add_visualize_and_set(parser)
    add_no_progress(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``lgrn evaluate [--config CFG] --expname DIR (--load_path CKPT|MODEL.onnx | --eval_ckpts)``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.load_path = args.load_path or args.model
    if args.crops == "detector" and (args.eval_ckpts or not args.images_root):
        parser.error("--crops detector needs --images-root (the folder given to `lgrn prepare --root`) and one "
                     "--load_path (not --eval_ckpts)")
    return run(args, EVAL_CKPTS if args.eval_ckpts else EVALUATE)
