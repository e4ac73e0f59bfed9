"""`lgrn prepare`: official WFLW / 300W / COFW releases -> processed crops + lists (docs/data_formats.md;
the library side is :func:`lgrn.data.prepare.prepare_dataset`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lgrn.data.prepare import DATASETS, prepare_dataset

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lgrn prepare", description="Turn an official dataset release into the processed crop layout "
        "(OUT/{train,test}/Image + lists) that the shipped configs read.")
    parser.add_argument("dataset", choices=sorted(DATASETS), help="which official release ROOT holds")
    parser.add_argument("--root", required=True, type=Path,
                        help="the release folder (e.g. WFLW with WFLW_images/ and WFLW_annotations/; "
                        "300W with lfpw/ helen/ afw/ ibug/; COFW with the .mat files)")
    parser.add_argument("--out", required=True, type=Path, help="output folder, e.g. data/WFLW")
    parser.add_argument("--size", type=int, default=256, help="crop side in pixels (default 256)")
    parser.add_argument("--scale", type=float, default=1.2,
                        help="crop side / larger side of the landmark box (default 1.2, PFLD's rule)")
    parser.add_argument("--jpeg-quality", type=int, default=95, help="quality of .jpg crops (default 95)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lgrn prepare``; returns the exit code (1: nothing usable prepared, 2: bad --root)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.size < 8:
        parser.error(f"--size must be at least 8, got {args.size}")
    if not args.scale > 0:
        parser.error(f"--scale must be positive, got {args.scale}")
    if not 0 <= args.jpeg_quality <= 100:
        parser.error(f"--jpeg-quality must lie in 0..100, got {args.jpeg_quality}")
    if not args.root.is_dir():
        print(f"lgrn prepare: --root {args.root} is not a folder", file=sys.stderr)
        return 2
    try:
        reports = prepare_dataset(args.dataset, args.root, args.out, size=args.size, scale=args.scale,
                                  jpeg_quality=args.jpeg_quality, progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as err:
        print(f"lgrn prepare: {err}", file=sys.stderr)
        return 1
    if not reports:
        print(f"lgrn prepare: nothing to prepare in {args.root}", file=sys.stderr)
        return 1
    for report in reports:
        print(report.summary())
    empty = [r.split for r in reports if r.listed == 0]
    if empty:
        print(f"lgrn prepare: no usable face in split(s) {', '.join(empty)} (see the reasons above)",
              file=sys.stderr)
        return 1
    print(f"done: {args.out}")
    return 0
