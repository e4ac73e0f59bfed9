"""Training-step throughput for ``lgrn bench`` (docs/training.md, "fast path"): images/s of one full
step (forward, loss, backward, SGD update) of a config's model on random inputs, for the faithful
``fp32`` path (eager, float32, contiguous, as released) or the ``fast`` path (bf16 autocast +
channels_last, plus torch.compile when the config asks for it). Data loading is not included (the
benchmark measures it apart).
"""
from __future__ import annotations

import copy
import resource
import sys
import time
from typing import Any

import torch

from ..engine.runtime import autocast_context, resolve_device
from ..engine.schedule import build_optimizer
from ..losses import build_criterion
from ..models import build_model

VARIANTS = ("fp32", "fast", "config")


def variant_config(config: dict, variant: str) -> dict:
    """A copy of ``config`` with the training switches of ``variant``: ``fp32`` = amp off,
    channels_last off, compile off (the release); ``config`` = the config's own switches; ``fast`` = ``amp: auto`` (bf16 where it is native: CUDA or a
    CPU with AVX512_BF16 / AMX; fp32 elsewhere) + channels_last (compile as given)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    config = copy.deepcopy(config)
    tp = config["train_param"]
    if variant == "config":          # the config's own switches, unchanged
        return config
    if variant == "fp32":
        tp.update(amp=None, channels_last=False, compile=False)
    else:
        tp.update(amp="auto", channels_last=True)
    return config


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # process high-water mark
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 2 ** 10


def train_step_throughput(config: dict, batch_size: int, steps: int, variant: str = "fp32", warmup: int = 2,
                          device: str | None = None) -> dict[str, Any]:
    """Time ``steps`` training steps after ``warmup`` untimed ones.

    Returns a benchmark record ``{"kind": "train", "model", "variant", "batch", "images_per_s",
    "ms_per_batch", "peak_mem_mb"}`` (peak memory: CUDA allocator peak on GPU, the process's maximum
    resident size on CPU)."""
    if steps < 1 or batch_size < 1:
        raise ValueError("steps and batch_size must be >= 1")
    config = variant_config(config, variant)
    tp = config["train_param"]
    dev = resolve_device(device or tp["device"])
    torch.manual_seed(0)
    model = build_model(config).to(dev)
    if tp["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    criterion = build_criterion(tp, model.scheme).to(dev)
    optimizer = build_optimizer(model, tp)
    forward = torch.compile(model) if tp["compile"] else model
    size = int(config["structure"]["crop_size"])
    channels = 3 if config["structure"]["is_color"] else 1
    images = torch.randn(batch_size, channels, size, size, device=dev)
    if tp["channels_last"]:
        images = images.contiguous(memory_format=torch.channels_last)
    targets = torch.rand(batch_size, model.num_landmarks, 2, device=dev) * size
    model.train()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    def step() -> None:
        with autocast_context(dev, tp["amp"]):
            predictions = forward(images)
        loss, _ = criterion(predictions.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - start
    structure = config["structure"]
    return {"kind": "train", "model": f"{structure['backbone_name']}+{structure['predictor_name']}",
            "variant": variant, "batch": batch_size, "images_per_s": batch_size * steps / seconds,
            "ms_per_batch": 1000 * seconds / steps, "peak_mem_mb": _peak_memory_mb(dev)}
