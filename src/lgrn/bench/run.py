"""Running ``lgrn bench`` (the package docstring of :mod:`lgrn.bench` describes the measurements):
:class:`BenchOptions` says what to measure, :func:`run_benchmarks` measures it section by section and
returns the records in table order.
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .data import bench_data, write_crops
from .inference import BACKENDS, ORT_BACKENDS, QUICK_BACKENDS, Budget, OnnxFiles, bench_head_split, bench_model
from .models import DEFAULT_MODELS, QUICK_MODELS, file_model, model_config
from .records import BenchRecord
from .train import bench_train_steps

__all__ = ["SECTIONS", "BenchOptions", "CudaUnavailable", "quick_options", "resolve_bench_device", "run_benchmarks"]

logger = logging.getLogger("lgrn")
SECTIONS = ("inference", "head", "train", "data")


class CudaUnavailable(RuntimeError):
    """The benchmark was asked to run on CUDA and there is no usable GPU."""


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


def quick_options(**overrides: Any) -> BenchOptions:
    """The ``--quick`` set: finishes in under a minute on a quiet 2-core CPU."""
    base = dict(models=QUICK_MODELS, backends=QUICK_BACKENDS,
                batches=(1,), head_batch=8, train_batch=8, train_steps=2, data_images=16, data_batch=8,
                data_loader_workers=0, interpolations=("nearest", "bilinear"), min_seconds=0.2, warmup=1,
                min_calls=3)
    base.update(overrides)
    return BenchOptions(**base)


def resolve_bench_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else the CPU; ``cuda`` without a GPU is an error
    (:class:`CudaUnavailable`)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CudaUnavailable("device cuda asked for but torch.cuda.is_available() is False")
    return torch.device(name)


def run_benchmarks(options: BenchOptions) -> list[BenchRecord]:
    """Run the selected sections; return the records (in table order). Notes for the table's footer
    (ONNX export times, skipped backends) are appended to ``options.notes``."""
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
            logger.info("bench: training steps")
            records += bench_train_steps(options.train_model, model_config(options.train_model, options.crop_size),
                                         options.train_batch, options.train_steps, options.train_variants, device)
        if "data" in options.sections:
            logger.info("bench: data pipeline")
            samples = write_crops(workdir / "crops", options.data_images, options.crop_size)
            records += bench_data(samples, options.data_batch, options.min_seconds, workdir,
                                  options.interpolations, options.data_loader_workers, gpu_augment_device=device,
                                  crop_size=options.crop_size)
    return records


def _onnx_files(options: BenchOptions, workdir: Path) -> OnnxFiles | None:
    """Where the ONNX backends' files go, or None (with a note) when they are not asked for or ONNX
    Runtime is not installed."""
    if not set(options.backends) & set(ORT_BACKENDS):
        return None
    try:
        # Deferred: onnxruntime is an optional extra (pip install -e .[onnx]); this only checks for it.
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        options.notes.append(f"ONNX Runtime backends skipped: {exc} (pip install -e .[onnx])")
        return None
    return OnnxFiles(workdir / "onnx", threads=options.threads)
