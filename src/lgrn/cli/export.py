"""`lgrn export`: export a checkpoint to ONNX (optionally int8), check ONNX Runtime against PyTorch, and
with ``--eval`` compare the networks' NME on the checkpoint's test set (docs/inference.md).

The export itself is :func:`lgrn.export.export_checkpoint`; the ``--eval`` wiring lives here because it
reads the training data package (``lgrn.data``), which the serving modules do not import.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from ..backends import Network
from ..config import resolve_config
from ..data.dataset import build_test_dataset
from ..export import export_checkpoint
from ..metrics import nme

__all__ = ["main", "build_parser", "nme_on_test_set"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lgrn export", description=(
        "Export an lgrn checkpoint to ONNX (dynamic batch axis, lgrn metadata embedded + JSON sidecar), check "
        "ONNX Runtime against PyTorch, and optionally add a static int8 model calibrated on face images."))
    parser.add_argument("--checkpoint", help="lgrn checkpoint (.pth / .pth.tar; default: the shipped 68-point "
                        "model, lgrn.pretrained.DEFAULT_MODEL)")
    parser.add_argument("--onnx", required=True, help="output fp32 ONNX file")
    parser.add_argument("--opset", type=int, default=18)
    parser.add_argument("--int8", action="store_true", help="also write a static int8 (QDQ) model")
    parser.add_argument("--int8-out", help="int8 output (default: <onnx stem>.int8.onnx)")
    parser.add_argument("--calib", help="folder of face images (or prepared crops) for int8 calibration")
    parser.add_argument("--calib-max", type=int, default=64, help="faces used for calibration (default 64)")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="max allowed |ONNX fp32 - PyTorch| in input pixels (default 1e-3)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    parser.add_argument("--eval", action="store_true",
                        help="report the NME of PyTorch, ONNX fp32 (and int8) on the checkpoint's test set")
    parser.add_argument("--eval-max", type=int, default=None, help="evaluate on the first N test images only")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for --eval, e.g. test_param.val_source=data/WFLW/test/test_98pt.txt")
    return parser


def nme_on_test_set(networks: dict[str, Network], config: dict, scheme: Any, max_images: int | None,
                    batch_size: int = 16) -> dict[str, float]:
    """Mean NME (``test_param.norm``) of each network on the config's test set (first ``max_images``)."""
    dataset = build_test_dataset(config, scheme)
    count = len(dataset) if max_images is None else min(len(dataset), max_images)
    errors: dict[str, list[np.ndarray]] = {name: [] for name in networks}
    for start in range(0, count, batch_size):
        items = [dataset[i] for i in range(start, min(count, start + batch_size))]
        images = np.stack([np.asarray(item["image"], dtype=np.float32) for item in items])
        targets = np.stack([np.asarray(item["landmarks"], dtype=np.float64) for item in items])
        for name, network in networks.items():
            errors[name].append(nme(np.asarray(network(images), dtype=np.float64), targets, scheme,
                                    norm=config["test_param"]["norm"]))
    return {name: float(np.concatenate(values).mean()) for name, values in errors.items()}


def _export(args: argparse.Namespace) -> int:
    result = export_checkpoint(args.checkpoint, args.onnx, opset=args.opset, int8=args.int8, int8_path=args.int8_out,
                               calib=args.calib, calib_max=args.calib_max, tolerance=args.tolerance,
                               threads=args.threads)
    if args.eval:
        config = resolve_config(result.model.config, source=f"{result.checkpoint}: config", overrides=args.set)
        scores = nme_on_test_set(result.networks, config, result.model.scheme, args.eval_max)
        line = ", ".join(f"{name} {100 * value:.3f}%" for name, value in scores.items())
        print(f"test-set NME ({config['test_param']['norm']}): {line}")
        if "onnx_int8" in scores:
            print(f"int8 - fp32 NME change: {100 * (scores['onnx_int8'] - scores['onnx_fp32']):+.3f} points")
    if not result.ok:
        print(f"lgrn export: error: ONNX fp32 differs from PyTorch by {result.difference:.2e} px > "
              f"{args.tolerance:g}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """`lgrn export`: checkpoint -> ONNX fp32 (+ int8), parity check, optional NME comparison."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.int8 and not args.calib:
        print("lgrn export: error: --int8 needs --calib DIR (face images for calibration)", file=sys.stderr)
        return 2
    try:
        return _export(args)
    except (FileNotFoundError, ValueError) as exc:   # missing / invalid checkpoint, calibration folder, config
        print(f"lgrn export: error: {exc}", file=sys.stderr)
        return 1
