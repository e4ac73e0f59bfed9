"""`lgrn synth`: write a synthetic face dataset in the release's processed list format
(docs/synthetic.md; the library side is :func:`lgrn.data.synthetic.write_synthetic_dataset`)."""
from __future__ import annotations

import argparse
import sys

from lgrn.data.synthetic import INDEX_MAPS, write_synthetic_dataset

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lgrn synth", description="Write a synthetic face dataset in the release's processed list format.")
    parser.add_argument("--num", type=int, required=True, help="number of images")
    parser.add_argument("--out", required=True, help="output folder (Image/ and the list files go there)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="image i depends only on (seed, i) (default 0)")
    parser.add_argument("--scheme", default="wflw98", choices=sorted(INDEX_MAPS),
                        help="landmark layout (default wflw98)")
    parser.add_argument("--split", default="train", choices=("train", "test"), help="list file prefix")
    parser.add_argument("--occlusion-rate", type=float, default=0.3,
                        help="probability that a face gets occluders (default 0.3)")
    parser.add_argument("--workers", type=int, default=2, help="rendering processes (default 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lgrn synth``; returns the exit code (2 for invalid values)."""
    args = build_parser().parse_args(argv)
    try:
        summary = write_synthetic_dataset(args.out, args.num, seed=args.seed, size=args.size, scheme=args.scheme,
                                          split=args.split, occlusion_rate=args.occlusion_rate,
                                          workers=args.workers, progress=not args.no_progress)
    except (ValueError, OSError) as exc:
        print(f"lgrn synth: error: {exc}", file=sys.stderr)
        return 2
    n = summary.num_images
    print(f"wrote {n} images ({args.size}x{args.size}, scheme {args.scheme}, seed {args.seed}) to {args.out}")
    print(f"  list:       {summary.list_path}")
    if summary.attr_path is not None:
        print(f"  attributes: {summary.attr_path}")
    flags = ", ".join(f"{k} {v} ({100.0 * v / n:.0f}%)" for k, v in summary.attribute_counts.items())
    print(f"  subsets:    {flags}")
    print(f"  hidden landmarks: {100.0 * summary.hidden_fraction:.1f}%")
    print(f"  time: {summary.seconds:.1f} s ({n / max(summary.seconds, 1e-9):.0f} images/s, {args.workers} workers)")
    return 0
