"""``lgrn demo``: train L-GRN and the FC baseline on synthetic faces (no download) with a light
backbone at 128 px and the fast CPU path, evaluate both on held-out synthetic faces that include
occluded ones, and compare them: NME, FR@0.1, AUC@0.1, NME on visible vs occluded landmarks,
parameters and ms per face. Writes the table (markdown + json), the CED plot of both models and a
grid of predictions into the output folder. Then the shipped 68-point model runs on real photos
(``demo_real``: ``real_faces.png``, ``real_faces.json``).

The work is ``lgrn.engine.demo.demo`` (docs/training.md, "The demo"); this module parses the options.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lgrn.engine.demo import demo

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lgrn demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    parser.add_argument("--quick", action="store_true", help="a tiny run (seconds) to check the set-up")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of both demo configs")
    parser.add_argument("--photos", type=Path, default=None,
                        help="a folder of your own photos for the shipped model (default: the real samples beside "
                        "a source checkout, ../shared/data)")
    parser.add_argument("--no-real-faces", action="store_true", help="skip the shipped model on real photos")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.photos is not None and not args.photos.is_dir():
        parser.error(f"--photos {args.photos} is not a folder")
    out = Path(args.out)
    try:
        demo(out, quick=args.quick, progress=not args.no_progress, overrides=args.overrides,
             real_faces=not args.no_real_faces, photos=args.photos)
    except KeyboardInterrupt:
        print(f"lgrn demo: interrupted; what was finished is in {out}", file=sys.stderr)
        return 130
    return 0
