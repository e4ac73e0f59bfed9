"""Latency measurement for inference benchmarks: warm up, then time repeated calls until both a minimum
number of calls and a minimum duration are reached, and report the median (robust to the odd scheduling
hiccup on a shared machine) with the 10th / 90th percentiles and the extremes. On a CUDA device each
call is timed with CUDA events (the host returns before the kernels finish). On a shared machine the other processes'
CPU use during the timed calls is measured too (Linux ``/proc/stat`` minus this process's own CPU time),
and :func:`wait_for_idle` waits for a quiet moment, so every number says what conditions it was taken
under. Used by ``lgrn bench`` (:mod:`lgrn.bench`) and benchmarks/inference_speed.py.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

__all__ = ["Timing", "time_calls", "load_average", "other_cpu_cores", "wait_for_idle"]


@dataclass
class Timing:
    """Milliseconds per call: ``median``, ``p10``, ``p90`` over ``calls`` timed calls; ``batch`` items per
    call gives ``items_per_s`` = batch / median."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    calls: int
    batch: int = 1
    other_cores: float = float("nan")   # CPU cores used by other processes while timing (nan: unknown)
    min_ms: float = float("nan")
    max_ms: float = float("nan")

    @property
    def items_per_s(self) -> float:
        return self.batch / (self.median_ms / 1000.0)

    def to_dict(self) -> dict:
        return {**asdict(self), "items_per_s": self.items_per_s}


def time_calls(function: Callable[[], object], batch: int = 1, warmup: int = 3, min_calls: int = 10,
               min_seconds: float = 1.0, max_calls: int = 1000, device: torch.device | None = None) -> Timing:
    """Time ``function()`` (no arguments; bind inputs with a lambda). ``device``: a ``torch.device``;
    on CUDA the calls are timed with CUDA events, elsewhere with ``perf_counter``."""
    cuda = device is not None and device.type == "cuda"
    for _ in range(warmup):
        function()
    if cuda:
        torch.cuda.synchronize(device)
    samples: list[float] = []
    probe = _CpuProbe()
    start = time.perf_counter()
    while len(samples) < max_calls and (len(samples) < min_calls or time.perf_counter() - start < min_seconds):
        if cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            function()
            end.record()
            end.synchronize()
            samples.append(begin.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            function()
            samples.append((time.perf_counter() - t0) * 1000.0)
    values = np.asarray(samples)
    return Timing(float(np.median(values)), float(np.percentile(values, 10)), float(np.percentile(values, 90)),
                  len(samples), batch, probe.other_cores(), float(values.min()), float(values.max()))


def _system_busy_seconds() -> float | None:
    """CPU seconds spent by all processes (user + nice + system + irq + softirq + steal), Linux only."""
    try:
        with open("/proc/stat") as handle:
            fields = handle.readline().split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields]
    busy = sum(ticks[:3]) + sum(ticks[5:8])      # skip idle (3) and iowait (4)
    return busy / os.sysconf("SC_CLK_TCK")


class _CpuProbe:
    """Cores used by OTHER processes since construction: system CPU time minus this process's own."""

    def __init__(self) -> None:
        self.wall, self.system, self.own = time.perf_counter(), _system_busy_seconds(), time.process_time()

    def other_cores(self) -> float:
        system = _system_busy_seconds()
        if system is None or self.system is None:
            return float("nan")
        wall = max(time.perf_counter() - self.wall, 1e-9)
        return max(0.0, (system - self.system) - (time.process_time() - self.own)) / wall


def other_cpu_cores(seconds: float = 1.0) -> float:
    """Cores used by other processes over the next ``seconds`` (nan where /proc/stat is unavailable)."""
    probe = _CpuProbe()
    time.sleep(seconds)
    return probe.other_cores()


def wait_for_idle(max_other_cores: float = 0.1, timeout: float = 600.0, poll: float = 2.0) -> float:
    """Block until other processes use less than ``max_other_cores`` cores (sampled over ``poll`` seconds)
    or ``timeout`` seconds pass; returns the last sample."""
    deadline = time.monotonic() + timeout
    while True:
        busy = other_cpu_cores(poll)
        if not busy >= max_other_cores or time.monotonic() > deadline:   # also stops on nan
            return busy


def load_average() -> float:
    """1-minute load average of the machine (``nan`` where the OS does not report it)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return float("nan")
