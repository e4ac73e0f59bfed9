"""``lgrn bench``: inference latency and throughput per backend and model, training-step throughput
(the faithful fp32 path and the fast path), data-pipeline throughput, the head's cost against the
backbone's, peak memory - printed as a table and optionally written as JSON records
``{kind, model, variant, batch, images_per_s, ms_per_batch, peak_mem_mb}``. ``--scale`` trains on a
WFLW-size synthetic set for a few steps and projects the release's 500-epoch schedule.

Timings use CUDA events on a GPU and ``perf_counter`` on the CPU; every number is a median over
repeated calls after warm-up. Run it on a quiet machine: the load average is printed with the table.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .bench_inference import BACKENDS, QUICK_BACKENDS
from .bench_models import DEFAULT_MODELS, QUICK_MODELS
from .bench_timing import BenchRecord
from .engine.runtime import cpu_capability, resolve_amp
from .timing import load_average

logger = logging.getLogger("lgrn")
SECTIONS = ("inference", "head", "train", "data")


@dataclass
class BenchOptions:
    """Everything a benchmark run needs (the CLI fills it; tests build small ones directly)."""

    models: tuple[str, ...] = DEFAULT_MODELS
    configs: tuple[str, ...] = ()
    backends: tuple[str, ...] = BACKENDS
    batches: tuple[int, ...] = (1, 32)
    sections: tuple[str, ...] = SECTIONS
    crop_size: int = 256
    head_batch: int = 32
    train_model: str = "wflw-lgrn"
    train_batch: int = 16
    train_steps: int = 5
    train_variants: tuple[str, ...] = ("fp32", "fast")
    data_images: int = 64
    data_batch: int = 32
    data_loader_workers: int = 2
    interpolations: tuple[str, ...] = ("nearest", "bilinear")
    min_seconds: float = 2.0
    warmup: int = 2
    min_calls: int = 5
    threads: int | None = 2
    device: str = "auto"
    workdir: str | None = None
    notes: list[str] = field(default_factory=list)


def quick_options(**overrides) -> BenchOptions:
    """The ``--quick`` set: finishes in under a minute on a quiet 2-core CPU."""
    base = dict(models=QUICK_MODELS, backends=QUICK_BACKENDS,
                batches=(1,), head_batch=8, train_batch=8, train_steps=2, data_images=16, data_batch=8,
                data_loader_workers=0, interpolations=("nearest", "bilinear"), min_seconds=0.2, warmup=1,
                min_calls=3)
    base.update(overrides)
    return BenchOptions(**base)


def resolve_bench_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("lgrn bench: --device cuda but torch.cuda.is_available() is False")
    return torch.device(name)


def run_benchmarks(options: BenchOptions) -> list[BenchRecord]:
    """Run the selected sections; return the records (in table order)."""
    from .bench_inference import Budget, bench_head_split, bench_model
    from .bench_models import file_model, model_config

    unknown = set(options.backends) - set(BACKENDS)
    if unknown:
        raise ValueError(f"unknown backend(s) {sorted(unknown)}; expected some of {', '.join(BACKENDS)}")
    device = resolve_bench_device(options.device)
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    budget = Budget(warmup=options.warmup, min_calls=options.min_calls, min_seconds=options.min_seconds)
    models = [(name, model_config(name, options.crop_size)) for name in options.models]
    models += [file_model(path) for path in options.configs]
    records: list[BenchRecord] = []
    with tempfile.TemporaryDirectory(prefix="lgrn-bench-") as tmp:
        workdir = Path(options.workdir or tmp)
        if "inference" in options.sections:
            onnx = _onnx_files(options, workdir)
            for name, config in models:
                logger.info("bench: inference %s", name)
                records += bench_model(name, config, options.backends, options.batches, device, budget, onnx)
            if onnx is not None:
                options.notes += [f"ONNX {precision} export of {name}: {seconds:.1f} s"
                                  for (name, precision), seconds in onnx.export_seconds.items()]
        if "head" in options.sections:
            for name, config in models:
                if config["structure"]["predictor_name"] == "BaseGCNPredictor" or name == options.train_model:
                    logger.info("bench: backbone vs head %s", name)
                    records += bench_head_split(name, config, options.head_batch, device, budget)
        if "train" in options.sections:
            from .bench_train import bench_train_steps

            logger.info("bench: training steps")
            records += bench_train_steps(options.train_model, model_config(options.train_model, options.crop_size),
                                         options.train_batch, options.train_steps, options.train_variants, device)
        if "data" in options.sections:
            from .bench_data import bench_data, write_crops

            logger.info("bench: data pipeline")
            samples = write_crops(workdir / "crops", options.data_images, options.crop_size)
            records += bench_data(samples, options.data_batch, options.min_seconds, workdir,
                                  options.interpolations, options.data_loader_workers, gpu_augment_device=device,
                                  crop_size=options.crop_size)
    return records


def _onnx_files(options: BenchOptions, workdir: Path):
    from .bench_inference import ORT_BACKENDS, OnnxFiles

    if not set(options.backends) & set(ORT_BACKENDS):
        return None
    try:
        import onnxruntime  # noqa: F401  (availability check)

        from . import export  # noqa: F401  (availability check)
    except ImportError as exc:
        options.notes.append(f"ONNX Runtime backends skipped: {exc} (pip install -e .[onnx])")
        return None
    return OnnxFiles(workdir / "onnx", threads=options.threads)


def summary_lines(records: list[BenchRecord]) -> list[str]:
    """Derived figures: head / backbone ratio, fast / fp32 training speed-up."""
    lines = []
    by_key = {(r.kind, r.model, r.variant, r.batch): r for r in records}
    for r in records:
        if r.kind == "inference" and r.variant == "head":
            backbone = by_key.get(("inference", r.model, "backbone", r.batch))
            if backbone:
                lines.append(f"{r.model}: head {r.ms_per_batch:.1f} ms = "
                             f"{100 * r.ms_per_batch / backbone.ms_per_batch:.2f} % of the backbone's "
                             f"{backbone.ms_per_batch:.1f} ms (batch {r.batch})")
        if r.kind == "train" and r.variant == "fast":
            fp32 = by_key.get(("train", r.model, "fp32", r.batch))
            if fp32:
                lines.append(f"{r.model}: training fast path {r.images_per_s / fp32.images_per_s:.2f}x the fp32 "
                             f"path ({r.images_per_s:.2f} vs {fp32.images_per_s:.2f} images/s, batch {r.batch})")
    return lines


def format_table(records: list[BenchRecord]) -> str:
    header = ("kind", "model", "variant", "batch", "ms/batch", "images/s", "peak MB", "note")
    rows = [(r.kind, r.model, r.variant, str(r.batch), f"{r.ms_per_batch:.1f}", f"{r.images_per_s:.2f}",
             f"{r.peak_mem_mb:.0f}", r.note) for r in records]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {3, 4, 5, 6}

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                         for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_line(device: torch.device, threads: int | None) -> str:
    cpu = f"{cpu_name()} ({os.cpu_count()} logical cores)"
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    precision = resolve_amp("auto", device.type) or "fp32"
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads (asked {threads}), device {device}"
            f"{gpu}, CPU {cpu}, capability {cpu_capability()}, fast-path precision (amp: auto) {precision}, "
            f"python {platform.python_version()}")


def write_json(path: str | Path, records: list[BenchRecord]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.to_json() for r in records], indent=2) + "\n")


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lgrn bench", description=__doc__.split("\n\n")[0])
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    started, load_before = time.perf_counter(), load_average()
    device = resolve_bench_device(args.device)
    if args.scale:
        from .bench_scale import run_scale

        records, lines = run_scale(device=device, steps=args.scale_steps, data_dir=args.scale_data,
                                   variant=args.scale_variant, threads=args.threads, num_images=args.scale_images)
        notes: list[str] = lines
    else:
        overrides = {k: v for k, v in {
            "models": args.models, "backends": args.backends, "configs": tuple(args.config),
            "batches": tuple(int(b) for b in args.batches) if args.batches else None,
            "sections": args.only, "crop_size": args.crop_size, "train_model": args.train_model,
            "train_batch": args.train_batch, "train_steps": args.train_steps,
            "threads": args.threads, "device": args.device}.items() if v is not None}
        options = quick_options(**overrides) if args.quick else BenchOptions(**overrides)
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


if __name__ == "__main__":
    sys.exit(main())
