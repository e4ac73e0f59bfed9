"""`lgrn predict INPUT [--checkpoint CKPT] --out DIR`: landmarks for an image, a folder or a video
(docs/inference.md). Parses the options into :class:`lgrn.predict.PredictOptions`, runs
:func:`lgrn.predict.predict_source` and prints what was written."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..detect import DETECTORS
from ..images import DEFAULT_MAX_PIXELS, ImageReadError
from ..output_formats import DEFAULT_FORMATS, FORMATS
from ..predict import PredictOptions, PredictResult, predict_source
from ..smoothing import DEFAULT_BETA, DEFAULT_D_CUTOFF, DEFAULT_MIN_CUTOFF

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lgrn predict", description="Landmarks for an image, a folder or a video.")
    p.add_argument("input", help="an image, a folder of images (searched recursively) or a video file")
    p.add_argument("--checkpoint", help="lgrn checkpoint or exported .onnx model (default: the shipped "
                   "68-point model, lgrn.pretrained.DEFAULT_MODEL)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--boxes", help="face boxes file (JSON or CSV, see docs) instead of the face detector")
    p.add_argument("--backend", choices=("torch", "onnxruntime"), help="default: from the checkpoint's file type")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--refine", type=int, default=0, help="re-crop around the predicted landmarks N times")
    p.add_argument("--flip", action="store_true", help="also run each face mirrored and average (2x the cost)")
    p.add_argument("--detector", default="auto", choices=("auto", *DETECTORS),
                   help="face detector: auto (default) = RetinaFace, or the Haar cascade when RetinaFace cannot run")
    p.add_argument("--detector-angles", default="0", help="haar only: comma-separated in-plane angles the Haar "
                   "cascade scans, e.g. 0,-25,25 to find tilted faces (slower)")
    p.add_argument("--min-face", type=int, default=None,
                   help="smallest face side in pixels (default: 16 for RetinaFace, 40 for Haar)")
    p.add_argument("--format", default=",".join(DEFAULT_FORMATS),
                   help=f"comma-separated output formats from {', '.join(FORMATS)} (default: "
                   f"{','.join(DEFAULT_FORMATS)}): lgrn JSON, wide CSV, COCO keypoints JSON, one iBUG .pts per face, "
                   "OpenFace-style CSV")
    p.add_argument("--no-annotate", action="store_true", help="do not write annotated images / video")
    p.add_argument("--no-smooth", action="store_true", help="video: no temporal smoothing")
    p.add_argument("--min-cutoff", type=float, default=DEFAULT_MIN_CUTOFF, help="One Euro min cutoff (Hz)")
    p.add_argument("--beta", type=float, default=DEFAULT_BETA, help="One Euro speed coefficient (per face size/s)")
    p.add_argument("--d-cutoff", type=float, default=DEFAULT_D_CUTOFF, help="One Euro speed cutoff (Hz)")
    p.add_argument("--max-frames", type=int, help="video: stop after N frames")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse images larger than this many pixels, read from the header before decoding "
                   f"(default {DEFAULT_MAX_PIXELS:,})")
    p.add_argument("--no-progress", action="store_true")
    return p


def _report(result: PredictResult, out: Path, formats: tuple[str, ...]) -> int:
    """Print what was written (and skipped); 130 after Ctrl-C, else 0."""
    summary, written = result.summary, result.written
    files = [p for p in written if p.parent == out and p.name != "summary.json"]
    pts = len(written) - len(files) - 1
    print(f"{summary.get('images', summary.get('frames'))} {'frame(s)' if summary['mode'] == 'video' else 'image(s)'},"
          f" {summary['faces']} face record(s) -> {', '.join(str(p) for p in files)}"
          + (f"{', ' if files else ''}{pts} .pts file(s) in {out / 'pts'}" if "pts" in formats else ""))
    if summary.get("unreadable"):
        print(f"skipped {len(summary['unreadable'])} unreadable file(s):")
        for item in summary["unreadable"]:
            print(f"  {item['file']}: {item['reason']}")
    if summary["mode"] == "video":
        print(f"jitter (mean frame-to-frame landmark motion over {summary['frame_pairs']} frame pairs): raw "
              f"{summary['jitter_raw_px']:.3f} px ({summary['jitter_raw_pct_face']:.2f}% of the face), smoothed "
              f"{summary['jitter_smoothed_px']:.3f} px ({summary['jitter_smoothed_pct_face']:.2f}%)"
              + (" [smoothing off]" if summary["smoothing"] is None else ""))
    if summary.get("interrupted"):
        done = summary["interrupted"]
        print(f"interrupted: the {done.get('images_done', done.get('frames_done'))} "
              f"{'frame(s)' if 'frames_done' in done else 'image(s)'} finished before Ctrl-C are written above"
              + (f" (of {done['images_listed']} listed)" if "images_listed" in done else ""), file=sys.stderr)
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    source, out = Path(args.input), Path(args.out)
    if not source.exists():
        print(f"lgrn predict: error: input not found: {source}", file=sys.stderr)
        return 2
    try:
        angles = tuple(float(a) for a in args.detector_angles.split(","))
    except ValueError:
        print(f"lgrn predict: error: --detector-angles must be numbers, got {args.detector_angles!r}", file=sys.stderr)
        return 2
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        print(f"lgrn predict: error: --format {args.format!r}: choose from {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    options = PredictOptions(
        checkpoint=args.checkpoint, boxes=args.boxes, backend=args.backend, device=args.device, threads=args.threads,
        batch_size=args.batch_size, refine=args.refine, flip=args.flip, detector=args.detector,
        detector_angles=angles, min_face=args.min_face, formats=formats, annotate=not args.no_annotate,
        smooth=not args.no_smooth, min_cutoff=args.min_cutoff, beta=args.beta, d_cutoff=args.d_cutoff,
        max_frames=args.max_frames, max_pixels=args.max_pixels, progress=not args.no_progress)
    try:
        result = predict_source(source, out, options)
    except (ImageReadError, FileNotFoundError, ValueError) as exc:
        # bad input (unreadable image, missing checkpoint, malformed boxes file...): the message names it
        print(f"lgrn predict: error: {exc}", file=sys.stderr)
        return 1
    return _report(result, out, formats)
