"""Memory and utilisation probes for ``lgrn bench``: a peak-memory probe (CUDA allocator peak on a
GPU, a sampling thread over the bytes malloc has handed out - or the resident set - on the CPU) and
GPU utilisation sampling when the driver exposes it. The timer is :func:`lgrn.bench.timing.time_calls`
(medians over repeated calls; CUDA events on a GPU); the rows are :class:`lgrn.bench.records.BenchRecord`.
"""
from __future__ import annotations

import ctypes
import gc
import os
import resource
import statistics
import threading
from typing import Callable

import torch

__all__ = ["PeakMemory", "GpuUtilisation", "synchronize"]


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_mb() -> float:
    """Current resident set size of this process in MB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                    "fsmblks", "uordblks", "fordblks", "keepcost")]


def _heap_reader() -> Callable[[], float] | None:
    """A function returning the bytes (in MB) malloc has handed out and not taken back - heap chunks
    in use in every arena plus mmap-ed chunks - from glibc's ``mallinfo2`` (glibc >= 2.33), or
    None where it is missing. Unlike the resident set, this falls when memory is freed even if
    the allocator keeps the pages, so one measurement does not hide the next one's memory."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallinfo2 = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2

    def read() -> float:
        info = mallinfo2()
        return (info.uordblks + info.hblkhd) / 2**20
    return read


_HEAP = _heap_reader()


class PeakMemory:
    """Peak memory of a block in MB, above what was in use when it started.

    CUDA: the caching allocator's peak (``max_memory_allocated``) after a reset. CPU: a daemon
    thread samples every ``interval`` seconds (torch kernels release the GIL, so the sampler runs
    during them) the bytes malloc has handed out (glibc ``mallinfo2``: torch tensors, oneDNN
    scratch space and ONNX Runtime arenas all come from malloc), or the resident set where that
    is unavailable; the result is the sampled peak minus the value at entry. Falls back to the
    process-lifetime ``ru_maxrss`` growth where neither exists."""

    def __init__(self, device: torch.device, interval: float = 0.002):
        self.device = device
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._read: Callable[[], float] = _HEAP or _rss_mb
        self._base = 0.0
        self._max = 0.0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._max = max(self._max, self._read())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device) / 2**20
            return self
        self._base = self._read()
        if self._base == 0.0:
            self._base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            return self
        self._max = self._base
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20 - self._base
            return
        if self._thread is None:
            self.peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - self._base
            return
        self._max = max(self._max, self._read())
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self._max - self._base, 0.0)


class GpuUtilisation:
    """Mean GPU utilisation (%) over a block via ``torch.cuda.utilization()`` (needs the NVML
    bindings; ``None`` when they are missing or there is no GPU - nvidia-smi is not required)."""

    def __init__(self, device: torch.device, interval: float = 0.1):
        self.device = device
        self.interval = interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def available(device: torch.device) -> bool:
        if device.type != "cuda":
            return False
        try:
            torch.cuda.utilization(device)
        except Exception:  # missing pynvml / driver without NVML: report "n/a", never fail a benchmark
            return False
        return True

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.samples.append(float(torch.cuda.utilization(self.device)))
            self._stop.wait(self.interval)

    def __enter__(self) -> "GpuUtilisation":
        if self.available(self.device):
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.samples) if self.samples else None
