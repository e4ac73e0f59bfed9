"""Inference measurements for ``lgrn bench``: latency (batch 1) and throughput (batch 32) of one
model under each backend - eager fp32, channels_last, ``torch.compile``, bf16 autocast
(channels_last too), ONNX Runtime fp32 and static int8 (through ``lgrn.export``) - and the cost of
the head against the backbone's forward pass.

Each backend is built inside the memory probe, so ``peak_mem_mb`` includes its own copy of the
weights (and, for ONNX Runtime, the session's arenas) plus the activations of the timed calls.
"""
from __future__ import annotations

import copy
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch

from .. import export
from ..backends import load_onnx_model
from ..config import get_scheme_for_config
from ..data.synthetic import SyntheticFaces
from ..images import normalize_image
from .memory import PeakMemory
from .models import build_bench_model, random_images
from .records import BenchRecord, make_record
from .timing import Timing, time_calls

logger = logging.getLogger("lgrn")

BACKENDS = ("eager_fp32", "channels_last", "compile", "bf16", "ort_fp32", "ort_int8")
QUICK_BACKENDS = ("eager_fp32", "channels_last", "bf16", "ort_fp32")
ORT_BACKENDS = ("ort_fp32", "ort_int8")


@dataclass
class Budget:
    """How long to time each measurement: warm-up calls, minimum timed calls and seconds."""

    warmup: int = 2
    min_calls: int = 5
    min_seconds: float = 2.0

    def time(self, fn: Callable[[], Any], device: torch.device, batch: int) -> Timing:
        # Big batches take long per call: fewer repetitions still give a stable median.
        min_calls = self.min_calls if batch <= 8 else max(3, self.min_calls // 2)
        return time_calls(fn, device=device, warmup=self.warmup, min_calls=min_calls, min_seconds=self.min_seconds)


def _torch_runner(model: torch.nn.Module, backend: str, images: torch.Tensor) -> Callable[[], Any]:
    """A no-argument callable running one forward pass of ``backend`` on ``images``."""
    device = images.device
    if backend in ("channels_last", "bf16"):
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    if backend == "compile":
        # A fresh compiler cache per model and batch: otherwise the models compiled before exhaust
        # dynamo's recompile limit and later ones silently run eager.
        torch._dynamo.reset()
        model = torch.compile(model)
    autocast = backend == "bf16"

    def run() -> Any:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            return model(images)
    return run


class OnnxFiles:
    """ONNX files of the benchmarked models, exported once per (model, precision) with ``lgrn.export``
    (which imports onnx / onnxruntime only when it runs: optional extras) and kept in a temporary
    directory for the run (int8 quantisation starts from the fp32 file and is calibrated on synthetic
    face crops; docs/inference.md)."""

    def __init__(self, workdir: str | Path | None = None, threads: int | None = None,
                 calibration_images: int = 16) -> None:
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="lgrn-bench-")
        self.workdir = Path(workdir or self._tmp.name)
        self.threads = threads
        self.calibration_images = calibration_images
        self.export_seconds: dict[tuple[str, str], float] = {}

    def path(self, name: str, model: torch.nn.Module, config: dict, int8: bool) -> Path:
        fp32 = self.workdir / f"{name}.onnx"
        if not fp32.is_file():
            started = time.perf_counter()
            export.export_onnx(model, fp32, sidecar=False)
            self.export_seconds[(name, "fp32")] = time.perf_counter() - started
        if not int8:
            return fp32
        quantised = self.workdir / f"{name}.int8.onnx"
        if not quantised.is_file():
            started = time.perf_counter()
            calib = calibration_inputs(config, self.calibration_images)
            export.quantize_int8(fp32, quantised, calib, sidecar=False)
            self.export_seconds[(name, "int8")] = time.perf_counter() - started
        return quantised

    def session(self, path: Path) -> Any:
        return load_onnx_model(path, threads=self.threads)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def calibration_inputs(config: dict, count: int) -> np.ndarray:
    """``[N, C, S, S]`` normalised synthetic face crops for int8 calibration (face-like statistics
    set the activation ranges; speed does not depend on them, accuracy does)."""
    structure = config["structure"]
    faces = SyntheticFaces(count, seed=123, size=structure["crop_size"], scheme=get_scheme_for_config(config).name)
    images = [faces.sample(i).image for i in range(count)]
    if not structure["is_color"]:
        images = [cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[..., None] for image in images]
    return np.stack([normalize_image(image) for image in images])


def bench_model(name: str, config: dict, backends: tuple[str, ...], batches: tuple[int, ...],
                device: torch.device, budget: Budget, onnx: OnnxFiles | None = None) -> list[BenchRecord]:
    """Records ``kind="inference"`` for every (backend, batch) of one model. A backend that cannot
    run here (no ONNX Runtime, no compiler for torch.compile, ONNX on a GPU run) is skipped with a
    logged reason instead of failing the whole benchmark."""
    records: list[BenchRecord] = []
    base = build_bench_model(config, torch.device("cpu"))
    for backend in backends:
        if backend in ORT_BACKENDS and onnx is None:
            continue
        for batch in batches:
            try:
                records.append(_bench_one(name, config, base, backend, batch, device, budget, onnx))
            except Exception as exc:  # report and go on: one missing toolchain must not hide the rest
                logger.warning("bench %s %s batch %d skipped: %s: %s", name, backend, batch,
                               type(exc).__name__, exc)
                if backend == "compile" or backend in ORT_BACKENDS:
                    break
    return records


def _bench_one(name: str, config: dict, base: torch.nn.Module, backend: str, batch: int, device: torch.device,
               budget: Budget, onnx: OnnxFiles | None) -> BenchRecord:
    note = ""
    with PeakMemory(device if backend not in ORT_BACKENDS else torch.device("cpu")) as memory:
        if backend in ORT_BACKENDS:
            assert onnx is not None
            path = onnx.path(name, base, config, int8=backend == "ort_int8")
            session = onnx.session(path)
            images = random_images(batch, config, torch.device("cpu")).numpy()
            timing = budget.time(lambda: session.run_numpy(images), torch.device("cpu"), batch)
            note = f"ONNX Runtime CPU, {onnx.threads or 'default'} threads"
        else:
            model = copy.deepcopy(base).to(device)
            images = random_images(batch, config, device)
            run = _torch_runner(model, backend, images)
            if backend == "compile":
                started = time.perf_counter()
                run()  # the first call compiles; timed separately so the table shows it
                note = f"compile {time.perf_counter() - started:.0f} s"
            timing = budget.time(run, device, batch)
    return make_record("inference", name, backend, batch, timing, memory.peak_mb, note)


def bench_head_split(name: str, config: dict, batch: int, device: torch.device, budget: Budget) -> list[BenchRecord]:
    """Backbone forward vs head forward (and, for the graph head, its graph layers alone) at
    ``batch``, eager fp32: variants ``backbone``, ``head``, ``head.graph``. The head is fed the
    backbone's real stride-32 map, exactly as in ``LandmarkModel.forward``."""
    model = build_bench_model(config, device)
    images = random_images(batch, config, device)
    with torch.inference_mode():
        features = model.backbone(images)[-1]
    records = []
    parts: list[tuple[str, Callable[[], Any]]] = [("backbone", lambda: model.backbone(images)),
                                                  ("head", lambda: model.head(features))]
    sem_gcn = getattr(model.head, "sem_gcn", None)
    if sem_gcn is not None:
        with torch.inference_mode():
            nodes, _ = model.head.map_to_node(features)
        parts.append(("head.graph", lambda: sem_gcn(nodes)))
    for variant, fn in parts:
        with PeakMemory(device) as memory:
            def run(fn: Callable[[], Any] = fn) -> Any:
                with torch.inference_mode():
                    return fn()
            timing = budget.time(run, device, batch)
        records.append(make_record("inference", name, variant, batch, timing, memory.peak_mb, "eager fp32"))
    backbone_ms = records[0].ms_per_batch
    for record in records[1:]:
        record.note = f"eager fp32, {100 * record.ms_per_batch / backbone_ms:.2f} % of backbone"
    return records
