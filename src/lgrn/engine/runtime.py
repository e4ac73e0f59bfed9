"""Run-time plumbing shared by training and evaluation: device choice, the bf16 / channels_last
switches, seeding and RNG state capture (as weights_only-safe plain types), rank-0 logging,
atomic file writes (re-exported from ``lgrn.atomic``) and the engine's DataLoader, which says
"more workers than CPUs" once per process instead of once per loader.

Everything here is small and side-effect free apart from what its name says, so the trainer and
the evaluator read top to bottom without device or logging boilerplate.
"""
from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader


LOGGER_NAME = "lgrn"
logger = logging.getLogger(LOGGER_NAME)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; ``cuda`` without a GPU is an error (bug 2: the
    release hard-wires CUDA)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train_param.device is 'cuda' but torch.cuda.is_available() is False; "
                           "use device: auto or cpu")
    if name == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device(name)


AMP_CHOICES = (None, "auto", "bf16")
# CPU capabilities (torch.backends.cpu.get_cpu_capability()) with native bf16 arithmetic. On the others bf16
# autocast is emulated: a training step was 5-10x SLOWER than fp32 on AVX2 CPUs (on a plain AVX512 CPU
# benchmarks/amp_auto.py measured forced bf16 within about 20 % of fp32), so auto keeps fp32 there.
NATIVE_BF16_CAPABILITIES = ("AVX512_BF16", "AMX_BF16")
_warned_emulated_bf16 = False
_warned_workers = False


def cpu_capability() -> str:
    """What ``torch.backends.cpu.get_cpu_capability()`` reports (e.g. ``AVX2``, ``AVX512``,
    ``AVX512_BF16``), or ``DEFAULT`` when the build cannot tell."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):  # very old builds
        return "DEFAULT"


def has_native_bf16(device_type: str, capability: str | None = None) -> bool:
    """True on CUDA, and on a CPU whose capability includes native bf16 (``AVX512_BF16``, AMX)."""
    if device_type == "cuda":
        return True
    capability = cpu_capability() if capability is None else capability
    return any(name in capability.upper() for name in NATIVE_BF16_CAPABILITIES)


def resolve_amp(amp: str | None, device_type: str, capability: str | None = None) -> str | None:
    """The precision a run really uses: ``auto`` -> ``bf16`` where bf16 is native (CUDA, or a CPU
    reporting AVX512_BF16 / AMX), ``None`` (fp32) otherwise. ``bf16`` stays bf16 but logs one warning
    on a CPU that only emulates it; ``None`` stays fp32."""
    global _warned_emulated_bf16
    if amp not in AMP_CHOICES:
        raise ValueError(f"train_param.amp must be null, auto or bf16, got {amp!r}")
    if amp is None:
        return None
    native = has_native_bf16(device_type, capability)
    if amp == "auto":
        return "bf16" if native else None
    if not native and not _warned_emulated_bf16:
        _warned_emulated_bf16 = True
        logger.warning("amp: bf16 on a CPU without native bf16 (capability %s): bf16 arithmetic is emulated "
                       "there, which can make training several times slower than fp32 (5-10x on AVX2 CPUs); "
                       "amp: auto uses fp32 on such CPUs", cpu_capability() if capability is None else capability)
    return "bf16"


def autocast_context(device: torch.device, amp: str | None) -> contextlib.AbstractContextManager:
    """bf16 autocast on cpu or cuda when ``amp`` resolves to bf16 (see :func:`resolve_amp`); a no-op
    context otherwise."""
    if resolve_amp(amp, device.type) is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def to_device_images(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """Move a float image batch ``[B, C, H, W]`` to the device, channels_last when asked."""
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (the release seeds nothing, bug 17)."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """RNG states as tensors / lists so ``torch.load(weights_only=True)`` reads them back."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": np_state[0], "state": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state((np_state["key"], np_state["state"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    py_state = state["python"]
    random.setstate((py_state["version"], tuple(py_state["state"]), py_state["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def run_logging(expname: Path | None, is_main: bool, filename: str = "train.log") -> Iterator[logging.Logger]:
    """Log INFO to stderr (and ``expname/filename``) on rank 0; other ranks log warnings only.

    Handlers are removed on exit so repeated in-process runs (tests) do not duplicate lines."""
    handlers: list[logging.Handler] = []
    previous_level = logger.level
    if is_main:
        fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(fmt)
        handlers.append(stream)
        if expname is not None:
            expname.mkdir(parents=True, exist_ok=True)
            file_handler = logging.FileHandler(expname / filename)
            file_handler.setFormatter(fmt)
            handlers.append(file_handler)
        logger.setLevel(logging.INFO)
    else:
        logger.setLevel(logging.WARNING)
    for handler in handlers:
        logger.addHandler(handler)
    previous_propagate = logger.propagate
    logger.propagate = False
    try:
        yield logger
    finally:
        for handler in handlers:
            handler.flush()
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(previous_level)
        logger.propagate = previous_propagate


class EngineDataLoader(DataLoader):
    """A ``torch.utils.data.DataLoader`` whose warning "This DataLoader will create N worker processes
    ... suggested max number of worker ..." is issued once per process.

    PyTorch checks the worker count each time a loader starts its workers, so a run (one training
    loader plus one loader per evaluation) printed the same warning many times."""

    def check_worker_number_rationality(self) -> None:
        global _warned_workers
        if _warned_workers or not self.num_workers:
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            super().check_worker_number_rationality()
        for warning in caught:
            _warned_workers = True
            warnings.warn(warning.message, warning.category, stacklevel=3)
