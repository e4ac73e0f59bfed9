"""Evaluation (docs/training.md; the metrics: docs/losses_metrics.md): run a model over a test set in
annotation order, map the predictions back to the pixels of the test images, and compute per-image
NMEs with ``lgrn.metrics``.

Under DDP every rank predicts a contiguous shard and the shards are gathered, so the result covers
every image exactly once, in annotation order. The model is anything that maps images
``[B, C, S, S]`` to landmarks ``[B, K, 2]``: an ``nn.Module`` or an ONNX Runtime wrapper.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Subset
from tqdm import tqdm

from .. import metrics
from ..geometry import apply_affines, invert_affines
from .distributed import DistContext, all_gather_objects, shard_indices
from .runtime import EngineDataLoader, autocast_context, to_device_images

logger = logging.getLogger("lgrn")

ModelFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class EvalResult:
    """Per-image evaluation results in annotation order.

    ``predictions`` / ``ground_truth``: ``[N, K, 2]`` in the test images' pixels (for prepared data,
    the processed crop). ``nme_io`` / ``nme_ip``: ``[N]`` inter-ocular / inter-pupil NME.
    ``visibility``: ``[N, K]`` bool when the test set has visibility labels, else None.
    ``original_matrices``: per image the ``[2, 3]`` affine original image -> test image, when known.
    """

    names: list[str]
    predictions: np.ndarray
    ground_truth: np.ndarray
    nme_io: np.ndarray
    nme_ip: np.ndarray
    attributes: list[dict[str, int]] = field(default_factory=list)
    visibility: np.ndarray | None = None
    original_matrices: list[np.ndarray | None] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def nme(self) -> float:
        return float(np.mean(self.nme_io)) if len(self.nme_io) else float("nan")

    @property
    def count(self) -> int:
        return len(self.names)


def dataset_samples(dataset: Any) -> list | None:
    """The ``Sample`` record behind each dataset position (``LandmarkDataset.samples`` through its
    ``index_map``, e.g. a held-out validation split), or None for a dataset without samples."""
    samples = getattr(dataset, "samples", None)
    if samples is None:
        return None
    index_map = getattr(dataset, "index_map", None)
    if index_map is None:
        return list(samples)
    return [samples[int(i)] for i in index_map]


@dataclass
class Predictions:
    """Raw network outputs in network-input pixels, sorted by dataset index: ``indices [N]``,
    ``landmarks [N, K, 2]``, ``targets [N, K, 2]``, ``matrices [N, 2, 3]`` (image -> network input),
    ``visibility [N, K]``."""

    indices: np.ndarray
    landmarks: np.ndarray
    targets: np.ndarray
    matrices: np.ndarray
    visibility: np.ndarray


@torch.no_grad()
def predict(model: ModelFn, dataset: Any, device: torch.device, batch_size: int, workers: int = 0,
            ctx: DistContext | None = None, amp: str | None = None, channels_last: bool = False,
            progress: bool = True, desc: str = "eval") -> Predictions:
    """Predict every item of ``dataset`` (this rank's shard under DDP, then gathered from all)."""
    ctx = ctx or DistContext()
    shard = shard_indices(len(dataset), ctx)
    # Own generator: creating the loader's iterator must not consume the global torch RNG (exact resume).
    loader = EngineDataLoader(Subset(dataset, shard), batch_size=batch_size, shuffle=False, num_workers=workers,
                              drop_last=False, generator=torch.Generator())
    is_module = isinstance(model, torch.nn.Module)
    if is_module:
        was_training = model.training
        model.eval()
    chunks: list[tuple[np.ndarray, ...]] = []
    bar = tqdm(loader, desc=desc, disable=not (progress and ctx.is_main), leave=False, dynamic_ncols=True)
    for batch in bar:
        if is_module:
            images = to_device_images(batch["image"], device, channels_last)
            with autocast_context(device, amp):
                output = model(images)
        else:
            output = model(batch["image"])
        chunks.append((batch["index"].numpy(), output.float().cpu().numpy().astype(np.float64),
                       batch["landmarks"].numpy().astype(np.float64), batch["matrix"].numpy().astype(np.float64),
                       batch["visibility"].numpy().astype(bool)))
    if is_module and was_training:
        model.train()
    parts = all_gather_objects(chunks, ctx)
    flat = [chunk for part in parts for chunk in part]
    if not flat:
        raise ValueError("the evaluation set is empty")
    indices, preds, targets, mats, vis = (np.concatenate([c[i] for c in flat]) for i in range(5))
    order = np.argsort(indices, kind="stable")
    return Predictions(indices[order], preds[order], targets[order], mats[order], vis[order])


def evaluate(model: ModelFn, dataset: Any, scheme: Any, device: torch.device, batch_size: int = 128,
             workers: int = 0, ctx: DistContext | None = None, amp: str | None = None,
             channels_last: bool = False, progress: bool = True, desc: str = "eval") -> EvalResult:
    """Predict the whole set and compute per-image IO / IP NME in the test images' pixels.

    NME is invariant to the (similarity) test transform, so it equals the release's NME computed in
    network-input pixels up to rounding."""
    start = time.perf_counter()
    raw = predict(model, dataset, device, batch_size, workers, ctx, amp, channels_last, progress, desc)
    indices = raw.indices
    if len(indices) != len(dataset) or np.any(indices != np.arange(len(dataset))):
        raise RuntimeError(f"evaluation covered {len(indices)} items of {len(dataset)} (duplicate or missing indices)")
    to_image = invert_affines(raw.matrices)
    predictions = apply_affines(raw.landmarks, to_image)
    samples = dataset_samples(dataset)
    if samples is not None:
        ground_truth = np.stack([np.asarray(s.landmarks, dtype=np.float64) for s in samples])
        names = [str(s.name) for s in samples]
        attributes = [dict(s.attributes or {}) for s in samples]
        has_vis = any(s.visibility is not None for s in samples)
        originals = [None if s.crop_matrix is None else np.asarray(s.crop_matrix, dtype=np.float64)
                     for s in samples]
    else:
        ground_truth = apply_affines(raw.targets, to_image)
        names = [f"{i:06d}" for i in range(len(indices))]
        attributes, has_vis, originals = [{} for _ in names], True, [None for _ in names]
    nme_io = metrics.nme(predictions, ground_truth, scheme, norm="inter_ocular")
    nme_ip = metrics.nme(predictions, ground_truth, scheme, norm="inter_pupil")
    return EvalResult(names=names, predictions=predictions, ground_truth=ground_truth,
                      nme_io=np.asarray(nme_io, dtype=np.float64), nme_ip=np.asarray(nme_ip, dtype=np.float64),
                      attributes=attributes, visibility=raw.visibility if has_vis else None,
                      original_matrices=originals, seconds=time.perf_counter() - start)
