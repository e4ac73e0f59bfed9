"""`lgrn bench`: benchmark inference, training and data throughput.

Parses the command line into :class:`lgrn.bench.BenchOptions` (or the ``--scale`` arguments of
:func:`lgrn.bench.run_scale`), runs it and prints the report: environment line, load average, table,
notes, and the JSON file with ``--json``. What is measured: :mod:`lgrn.bench`; the numbers: docs/performance.md.
"""
from __future__ import annotations

import argparse
import logging
import time

import lgrn.bench as bench
from lgrn.bench import (SECTIONS, BenchOptions, CudaUnavailable, environment_line, format_table, load_average,
                        quick_options, resolve_bench_device, run_benchmarks, run_scale, summary_lines, write_json)

__all__ = ["build_parser", "main"]


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def build_parser() -> argparse.ArgumentParser:
    """The options of ``lgrn bench`` (the help's description is the first paragraph of :mod:`lgrn.bench`)."""
    parser = argparse.ArgumentParser(prog="lgrn bench", description=bench.__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small set that finishes in under a minute")
    parser.add_argument("--json", metavar="PATH", help="also write the records as a JSON list")
    parser.add_argument("--scale", action="store_true",
                        help="train on a WFLW-size synthetic set (7,500 faces, PDB) and project 500 epochs")
    parser.add_argument("--only", type=_csv, metavar="SECTIONS", help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--models", type=_csv, metavar="NAMES", help="comma-separated benchmark models")
    parser.add_argument("--config", action="append", default=[], metavar="PATH",
                        help="also benchmark the model of this YAML config (repeatable)")
    parser.add_argument("--backends", type=_csv, metavar="NAMES", help="comma-separated inference backends")
    parser.add_argument("--batches", type=_csv, metavar="SIZES", help="inference batch sizes (default 1,32)")
    parser.add_argument("--crop-size", type=int, help="input size of every model and of the data pipeline (default 256)")
    parser.add_argument("--train-model", help="model of the training-step rows (default wflw-lgrn)")
    parser.add_argument("--train-batch", type=int, help="training-step batch size (both variants)")
    parser.add_argument("--train-steps", type=int, help="timed training steps per variant")
    parser.add_argument("--threads", type=int, default=2, help="torch / ONNX Runtime threads (default 2)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--scale-steps", type=int, default=None, help="--scale: timed steps (default 5 CPU, 50 GPU)")
    parser.add_argument("--scale-data", metavar="DIR", help="--scale: where the synthetic set is written / reused")
    parser.add_argument("--scale-images", type=int, default=7500, help="--scale: synthetic faces (default 7,500 = WFLW)")
    parser.add_argument("--scale-variant", choices=("fp32", "fast"), default="fp32")
    return parser


def _options(args: argparse.Namespace) -> BenchOptions:
    """The benchmark options of the parsed arguments (``--quick`` starts from the quick set)."""
    overrides = {k: v for k, v in {
        "models": args.models, "backends": args.backends, "configs": tuple(args.config),
        "batches": tuple(int(b) for b in args.batches) if args.batches else None,
        "sections": args.only, "crop_size": args.crop_size, "train_model": args.train_model,
        "train_batch": args.train_batch, "train_steps": args.train_steps,
        "threads": args.threads, "device": args.device}.items() if v is not None}
    return quick_options(**overrides) if args.quick else BenchOptions(**overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    started, load_before = time.perf_counter(), load_average()
    try:
        device = resolve_bench_device(args.device)
    except CudaUnavailable:
        raise SystemExit("lgrn bench: --device cuda but torch.cuda.is_available() is False") from None
    if args.scale:
        records, notes = run_scale(device=device, steps=args.scale_steps, data_dir=args.scale_data,
                                   variant=args.scale_variant, threads=args.threads, num_images=args.scale_images)
    else:
        options = _options(args)
        records = run_benchmarks(options)
        notes = summary_lines(records) + options.notes
    print(f"\n{environment_line(device, args.threads)}")
    print(f"load average {load_before:.2f} at start, {load_average():.2f} at end; "
          f"{time.perf_counter() - started:.0f} s in all\n")
    print(format_table(records))
    for note in notes:
        print(f"- {note}")
    if args.json:
        write_json(args.json, records)
        print(f"\nwrote {len(records)} records to {args.json}")
    return 0
