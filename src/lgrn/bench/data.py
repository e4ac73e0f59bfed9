"""Data-pipeline measurements for ``lgrn bench``: images per second that ONE DataLoader worker
delivers (decode + the release's training augmentation, nearest and bilinear; decoded-image cache
instead of JPEG decoding; decoding alone), the same through a DataLoader with several workers, and
the batched augmentation of ``lgrn.data.gpu_augment`` run on the benchmark's device (the CPU here).

Inputs are 256x256 JPEG face crops (the release's processed format) written to a temporary folder
from the synthetic face generator, so decoding costs what it costs on real crops.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np
import torch

from ..config import get_scheme_for_config, resolve_config
from ..data.cache import build_image_cache, load_image
from ..data.dataset import LandmarkDataset
from ..data.gpu_augment import GpuAugment
from ..data.sample import Sample
from ..data.synthetic import SyntheticFaces
from ..data.transforms import TrainTransform
from .memory import PeakMemory
from .models import shipped_config
from .records import BenchRecord, make_record
from .timing import Timing, time_calls

# The release's training augmentation keys (docs/augmentation.md), read from the WFLW config.
AUGMENT_KEYS = ("rotation", "translate_rate", "scale_min", "scale_max", "mirror", "is_occluded")
AUGMENT_FILE = "WLFW/config_resnet.yaml"


def release_augmentation() -> dict:
    """The release's WFLW augmentation (``train_param`` keys of experiments/WLFW/config_resnet.yaml)."""
    train_param = shipped_config(AUGMENT_FILE)["train_param"]
    return {key: train_param[key] for key in AUGMENT_KEYS}


def pipeline_config(crop_size: int = 256, interpolation: str = "nearest", num_landmarks: int = 98) -> dict:
    """Resolved config of the benchmarked data pipeline: the release's augmentation at ``crop_size``."""
    common = {"num_kpts": num_landmarks, "is_color": True, "crop_size": crop_size}
    raw = {"structure": dict(common), "test_param": dict(common),
           "train_param": {**common, **release_augmentation(), "interpolation": interpolation}}
    return resolve_config(raw, source="<bench data pipeline>")


def write_crops(directory: str | Path, count: int, size: int = 256, scheme: str = "wflw98",
                quality: int = 95) -> list:
    """Write ``count`` synthetic face crops as JPEG files; return their ``Sample`` records (image
    on disk, not in memory)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    faces = SyntheticFaces(count, seed=7, size=size, scheme=scheme)
    samples = []
    for i in range(count):
        face = faces.sample(i)
        path = directory / f"crop_{i:05d}.jpg"
        if not cv2.imwrite(str(path), face.image, [cv2.IMWRITE_JPEG_QUALITY, quality]):
            raise OSError(f"cannot write benchmark image {path}")
        samples.append(Sample(image_path=str(path), name=path.name,
                              landmarks=np.asarray(face.landmarks, dtype=np.float64),
                              visibility=face.visibility, source=f"{path}:1"))
    return samples


@contextlib.contextmanager
def one_worker_threads() -> Iterator[None]:
    """What a DataLoader worker sees: one torch thread (PyTorch sets it in workers) and one OpenCV
    thread (so warpAffine does not borrow the other core and flatter the per-worker number)."""
    torch_threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv_threads)


def _chunks(dataset: Any, batch: int) -> Callable[[], Any]:
    """A callable that fetches the next ``batch`` items (cycling through the dataset)."""
    state = {"next": 0}

    def fetch() -> list:
        start = state["next"]
        items = [dataset[(start + i) % len(dataset)] for i in range(batch)]
        state["next"] = (start + batch) % len(dataset)
        return items
    return fetch


def bench_data(samples: list, batch: int, min_seconds: float, workdir: str | Path, interpolations: tuple[str, ...],
               loader_workers: int = 0, gpu_augment_device: torch.device | None = None,
               crop_size: int = 256) -> list[BenchRecord]:
    """Records ``kind="data"``, model ``pipeline-<crop_size>``, ``batch`` images per timed call
    (``samples``: crops of ``crop_size`` pixels on disk, from :func:`write_crops`)."""
    config = pipeline_config(crop_size, interpolation="nearest")
    scheme = get_scheme_for_config(config)
    model = f"pipeline-{crop_size}"
    cpu = torch.device("cpu")
    records: list[BenchRecord] = []

    def measure(variant: str, fn: Callable[[], Any], note: str, per_worker: bool = True,
                device: torch.device = cpu) -> None:
        with PeakMemory(device) as memory:
            with one_worker_threads() if per_worker else contextlib.nullcontext():
                timing: Timing = time_calls(fn, device=device, warmup=1, min_calls=3, min_seconds=min_seconds)
        records.append(make_record("data", model, variant, batch, timing, memory.peak_mb, note))

    cache = build_image_cache(samples, Path(workdir) / "cache", "bench", progress=False)
    measure("decode", _chunks(_DecodeOnly(samples, load_image), batch), "JPEG decode only, 1 worker")
    for interpolation in interpolations:
        tp = pipeline_config(crop_size, interpolation=interpolation)["train_param"]
        decoded = LandmarkDataset(samples, scheme, TrainTransform(tp, scheme), seed=0)
        measure(f"decode+augment/{interpolation}", _chunks(decoded, batch), "JPEG decode + release augmentation, 1 worker")
        cached = LandmarkDataset(samples, scheme, TrainTransform(tp, scheme), seed=0, cache=cache)
        measure(f"cache+augment/{interpolation}", _chunks(cached, batch), "memmap cache + release augmentation, 1 worker")
        if loader_workers > 0:
            measure(f"loader{loader_workers}w+augment/{interpolation}",
                    _loader_fetch(decoded, batch, loader_workers),
                    f"DataLoader, {loader_workers} workers, JPEG decode", per_worker=False)
    if gpu_augment_device is not None:
        records += bench_gpu_augment(samples, scheme, cache, batch, interpolations, gpu_augment_device, min_seconds,
                                     model, crop_size)
    return records


class _DecodeOnly:
    """Dataset-like view that only decodes (the cost the cache removes)."""

    def __init__(self, samples: list, load: Callable[[Any], np.ndarray]) -> None:
        self.samples, self.load = samples, load

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.load(self.samples[index])


def _loader_fetch(dataset: Any, batch: int, workers: int) -> Callable[[], Any]:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=workers,
                                         persistent_workers=True, drop_last=True)
    state: dict[str, Any] = {"it": iter(loader)}

    def fetch() -> Any:
        try:
            return next(state["it"])
        except StopIteration:
            state["it"] = iter(loader)
            return next(state["it"])
    return fetch


def bench_gpu_augment(samples: list, scheme: Any, cache: Any, batch: int, interpolations: tuple[str, ...],
                      device: torch.device, min_seconds: float, model: str, crop_size: int = 256) -> list[BenchRecord]:
    """``GpuAugment`` on ``device`` over a collated uint8 batch (the worker side only decodes:
    ``RawTransform``), with the benchmark's torch threads (it runs in the training process)."""
    images = torch.from_numpy(np.stack([cache[i % len(cache)] for i in range(batch)])).to(device)
    landmarks = torch.from_numpy(np.stack([np.asarray(samples[i % len(samples)].landmarks, dtype=np.float32)
                                           for i in range(batch)])).to(device)
    records = []
    for interpolation in interpolations:
        tp = pipeline_config(crop_size, interpolation=interpolation)["train_param"]
        augment = GpuAugment(tp, scheme).to(device)
        generator = torch.Generator(device=device).manual_seed(0)
        with PeakMemory(device) as memory:
            timing = time_calls(lambda: augment(images, landmarks, generator=generator), device=device, warmup=1,
                                min_calls=3, min_seconds=min_seconds)
        records.append(make_record("data", model, f"gpu_augment/{interpolation}@{device.type}", batch, timing,
                                   memory.peak_mb, f"batched augmentation on {device.type}, "
                                   f"{torch.get_num_threads()} threads (decode not included)"))
    return records
