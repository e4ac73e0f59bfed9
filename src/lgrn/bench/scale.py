"""``lgrn bench --scale``: training at WFLW scale, projected to the release's full schedule.

A synthetic set of WFLW's size (7,500 faces, 256 px, written once in the processed list format by
``lgrn synth`` and reused; docs/synthetic.md) is trained on with the release's WFLW configuration
(ResNet-34 L-GRN, batch 64, PDB with 9 bins, the release's augmentation, DataLoader workers;
docs/training.md) through the real trainer for a fixed number of steps. The step time is the median
interval between optimiser steps after warm-up, so data loading that cannot keep up shows in it. The projection multiplies it by the
release's schedule: 500 epochs x floor(len(PDB-expanded set) / 64) iterations, plus 250 test-set
evaluations of 2,500 images. On a GPU the step intervals come from the same host clock after the
step's loss has been read back (which waits for the GPU), and GPU utilisation is sampled through
``torch.cuda.utilization()`` when the NVML bindings are installed.
"""
from __future__ import annotations

import copy
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ..data.synthetic import write_synthetic_dataset
from ..engine.evaluate import evaluate
from ..engine.trainer import Trainer
from .data import release_augmentation
from .memory import GpuUtilisation, PeakMemory
from .models import model_config
from .records import BenchRecord
from .throughput import variant_config

logger = logging.getLogger("lgrn")

WFLW_TRAIN_IMAGES = 7500
WFLW_TEST_IMAGES = 2500
RELEASE_EPOCHS = 500
RELEASE_BATCH = 64
RELEASE_EVALUATIONS = RELEASE_EPOCHS // 2      # snapshot_freq 2
SCALE_MODEL = "wflw-lgrn"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lgrn" / f"bench_scale_{WFLW_TRAIN_IMAGES}"


def ensure_synthetic_set(directory: Path, num_images: int, size: int = 256, workers: int | None = None) -> Path:
    """Write ``num_images`` synthetic faces with ``lgrn synth`` unless a complete list is there;
    returns the list file."""
    source = directory / "train_98pt.txt"
    if source.is_file() and sum(1 for line in source.open() if line.strip()) == num_images:
        logger.info("scale: reusing %s (%d faces)", source, num_images)
        return source
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    logger.info("scale: writing %d synthetic faces to %s (once; reused by later runs)", num_images, directory)
    started = time.perf_counter()
    summary = write_synthetic_dataset(directory, num_images, seed=0, size=size, split="train", workers=workers)
    if summary.list_path != source:
        raise RuntimeError(f"lgrn synth wrote {summary.list_path}, expected {source}")
    logger.info("scale: generated in %.0f s", time.perf_counter() - started)
    return source


def scale_config(source: Path, variant: str, device: torch.device, steps: int, workers: int) -> dict:
    """The release's WFLW training configuration on the synthetic set, one capped epoch."""
    config = model_config(SCALE_MODEL, train_param={
        **release_augmentation(), "batch_size": RELEASE_BATCH, "workers": workers, "is_pdb": 9,
        "criterion": {"type": "WiderWing", "kwargs": {"curvature": 0.5}},
        "train_root": str(source.parent), "train_source": str(source),
        "scheduler": {"milestones": [200, 350], "gamma": 0.2, "epochs": 1},
        "max_iters_per_epoch": steps, "snapshot_freq": 1000, "print_freq": 10_000, "seed": 0})
    config["train_param"]["device"] = device.type
    config["test_param"].update(dataset="synthetic", batch_size=RELEASE_BATCH, workers=0,
                                synthetic={"num_images": RELEASE_BATCH, "seed": 1, "occlusion_rate": 0.3})
    return variant_config(config, variant)


def run_scale(device: torch.device, steps: int | None = None, data_dir: str | Path | None = None,
              variant: str = "fp32", threads: int | None = 2, warmup: int | None = None,
              num_images: int = WFLW_TRAIN_IMAGES) -> tuple[list[BenchRecord], list[str]]:
    """Train ``warmup + steps + 1`` steps at WFLW scale (defaults: 5 + 50 on a GPU, 1 + 5 on the
    CPU); return the record and the projection lines."""
    if threads is not None:
        torch.set_num_threads(threads)
    steps = steps or (50 if device.type == "cuda" else 5)
    warmup = warmup if warmup is not None else (5 if device.type == "cuda" else 1)
    workers = min(4, os.cpu_count() or 1)
    source = ensure_synthetic_set(Path(data_dir) if data_dir else default_data_dir(), num_images)
    # Step i's time is the interval between the hooks after steps i-1 and i: one extra step.
    config = scale_config(source, variant, device, warmup + steps + 1, workers)
    stamps: list[float] = []

    def hook(trainer: Trainer, epoch: int, iteration: int) -> None:
        stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory(prefix="lgrn-scale-") as expname:
        with PeakMemory(device) as memory, GpuUtilisation(device) as utilisation:
            trainer = Trainer(config, expname, progress=False)
            trainer.hooks.append(hook)
            dataset_size = len(trainer.data.dataset)
            iterations = trainer.sampler.per_rank // RELEASE_BATCH
            trainer.fit()
        intervals = [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1:])]
        if not intervals:
            raise RuntimeError(f"--scale needs at least one timed step after {warmup} warm-up steps")
        step_s = statistics.median(intervals)
        eval_s = _eval_seconds_per_image(trainer, device)
    images_per_s = RELEASE_BATCH / step_s
    train_hours = RELEASE_EPOCHS * iterations * step_s / 3600
    eval_hours = RELEASE_EVALUATIONS * WFLW_TEST_IMAGES * eval_s / 3600
    name = f"{SCALE_MODEL}@{num_images}"
    record = BenchRecord(kind="train", model=name, variant=f"{variant}/scale", batch=RELEASE_BATCH,
                         images_per_s=images_per_s, ms_per_batch=1000 * step_s, peak_mem_mb=round(memory.peak_mb, 1),
                         note=f"real trainer + DataLoader ({workers} workers), {len(intervals)} timed steps")
    util = utilisation.mean
    lines = [
        f"scale set: {num_images} synthetic faces -> {dataset_size} after PDB (9 bins, repeat), "
        f"{iterations} iterations/epoch at batch {RELEASE_BATCH}",
        f"step {1000 * step_s:.0f} ms ({images_per_s:.1f} images/s, {variant}) on {device}"
        + (f", GPU utilisation {util:.0f} %" if util is not None else ""),
        f"projected 500-epoch schedule: {train_hours:.1f} h training + {eval_hours:.1f} h for "
        f"{RELEASE_EVALUATIONS} evaluations of {WFLW_TEST_IMAGES} test images = {train_hours + eval_hours:.1f} h",
    ]
    return [record], lines


def _eval_seconds_per_image(trainer: Trainer, device: torch.device) -> float:
    """Seconds per test image of the trainer's evaluation path (batch 64, the small synthetic set)."""
    model = copy.deepcopy(trainer.model)
    started = time.perf_counter()
    tp = trainer.config["train_param"]
    evaluate(model, trainer.test_set, trainer.scheme, device, RELEASE_BATCH, 0, amp=tp["amp"],
             channels_last=bool(tp["channels_last"]), progress=False)
    return (time.perf_counter() - started) / len(trainer.test_set)
