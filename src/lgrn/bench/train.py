"""Training-step measurements for ``lgrn bench``: one full step (forward, Soft Wing + Laplacian loss,
backward, SGD update) on a pre-made batch, for the faithful ``fp32`` path (eager, float32,
contiguous, as released) and the ``fast`` path (bf16 autocast + channels_last; ``fast+compile``
adds ``torch.compile``; docs/training.md). The step itself is
:func:`lgrn.bench.throughput.train_step_throughput`; this module wraps it in the benchmark's memory
probe and turns its result into table records.
"""
from __future__ import annotations

import copy
import logging

import torch

from .memory import PeakMemory
from .records import BenchRecord
from .throughput import train_step_throughput

logger = logging.getLogger("lgrn")
TRAIN_VARIANTS = ("fp32", "fast", "fast+compile")


def bench_train_steps(name: str, config: dict, batch: int, steps: int, variants: tuple[str, ...],
                      device: torch.device, warmup: int = 2) -> list[BenchRecord]:
    """Records ``kind="train"`` for each variant at the same ``batch`` (images/s = batch x steps /
    seconds of the timed steps, after ``warmup`` untimed steps)."""
    unknown = set(variants) - set(TRAIN_VARIANTS)
    if unknown:
        raise ValueError(f"unknown training variant(s) {sorted(unknown)}; expected some of {TRAIN_VARIANTS}")
    records = []
    for variant in variants:
        run_config = copy.deepcopy(config)
        run_config["train_param"]["compile"] = variant == "fast+compile"
        engine_variant = "fp32" if variant == "fp32" else "fast"
        try:
            with PeakMemory(device) as memory:
                result = train_step_throughput(run_config, batch, steps, variant=engine_variant, warmup=warmup,
                                               device=device.type)
        except Exception as exc:  # e.g. no C++ compiler for torch.compile: report, keep the other rows
            logger.warning("bench train %s %s skipped: %s: %s", name, variant, type(exc).__name__, exc)
            continue
        note = {"fp32": "eager fp32, as released", "fast": "bf16 autocast + channels_last",
                "fast+compile": "bf16 + channels_last + torch.compile"}[variant]
        records.append(BenchRecord(kind="train", model=name, variant=variant, batch=int(result["batch"]),
                                   images_per_s=float(result["images_per_s"]),
                                   ms_per_batch=float(result["ms_per_batch"]),
                                   peak_mem_mb=round(memory.peak_mb, 1), note=f"{note}, {steps} steps"))
    return records
