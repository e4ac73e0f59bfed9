"""The Dataset and its builders from a config: :class:`LandmarkDataset` (samples -> transformed items
with per-item randomness seeded by (seed, epoch, index), so results are the same with any number of
DataLoader workers and after a resume), :func:`build_train_dataset` (release list files or synthetic
faces, validation hold-out, PDB in its three modes, decoded-image cache, CPU or GPU augmentation) and
:func:`build_test_dataset` (test lists + subset attributes, or synthetic test faces).
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..images import can_decode
from ..landmarks import Scheme
from .cache import ImageCache, build_image_cache, load_image
from .pdb import DEFAULT_BINS, pdb_repeat_factors, weights_from_factors
from .readers import read_attributes, read_release_list, read_release_lists
from .sample import Sample
from .synthetic import SyntheticFaces
from .transforms import RawTransform, TestTransform, TrainTransform

logger = logging.getLogger(__name__)


class LandmarkDataset(Dataset):
    """Items from ``samples`` through ``transform(image, landmarks, rng, visibility=...)``.

    ``index_map`` ``[M]`` (optional) lists the sample behind each dataset position, e.g. a PDB-repeated
    or held-out subset; the cache, when given, is indexed by sample (built from ``samples``).
    Item: ``image`` float32 ``[C, S, S]`` (uint8 ``[H, W, 3]`` with RawTransform), ``landmarks`` float32
    ``[K, 2]``, ``visibility`` bool ``[K]``, ``matrix`` float32 ``[2, 3]`` (sample image -> network
    input), ``index`` (dataset position), ``sample_index`` (position in ``samples``).
    The rng of item i is ``np.random.default_rng([seed, epoch, i])``; the epoch lives in shared memory
    so ``set_epoch`` reaches persistent DataLoader workers too (call it before iterating the epoch).
    """

    def __init__(self, samples: list[Sample], scheme: Scheme, transform, seed: int = 0,
                 cache: ImageCache | None = None, index_map: np.ndarray | None = None) -> None:
        if not samples:
            raise ValueError("LandmarkDataset: no samples")
        self.samples = samples
        self.scheme = scheme
        self.transform = transform
        self.seed = int(seed)
        if cache is not None and len(cache) != len(samples):
            raise ValueError(f"LandmarkDataset: cache holds {len(cache)} images for {len(samples)} samples")
        self.cache = cache
        self.index_map = (np.arange(len(samples), dtype=np.int64) if index_map is None
                          else np.asarray(index_map, dtype=np.int64))
        if self.index_map.size and (self.index_map.min() < 0 or self.index_map.max() >= len(samples)):
            raise ValueError("LandmarkDataset: index_map points outside the sample list")
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def __len__(self) -> int:
        return int(self.index_map.size)

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def image(self, sample_index: int) -> np.ndarray:
        """BGR uint8 ``[H, W, 3]`` of one sample (from the cache when there is one)."""
        if self.cache is not None:
            return self.cache[sample_index]
        return load_image(self.samples[sample_index])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)}")
        sample_index = int(self.index_map[index])
        sample = self.samples[sample_index]
        where = sample.source or sample.name
        landmarks = np.asarray(sample.landmarks, dtype=np.float64)
        if landmarks.shape != (self.scheme.num_landmarks, 2):
            raise ValueError(f"{where}: {landmarks.shape[0] if landmarks.ndim else 0} landmarks, scheme "
                             f"{self.scheme.name!r} expects {self.scheme.num_landmarks}")
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        try:
            out = self.transform(self.image(sample_index), landmarks, rng, visibility=sample.visibility)
        except (ValueError, TypeError) as exc:
            if where in str(exc):
                raise
            raise type(exc)(f"{where}: {exc}") from exc
        return {"image": torch.from_numpy(out["image"]), "landmarks": torch.from_numpy(out["landmarks"]),
                "visibility": torch.from_numpy(np.ascontiguousarray(out["visibility"])),
                "matrix": torch.from_numpy(out["matrix"]), "index": int(index), "sample_index": sample_index}


@dataclass
class TrainData:
    """What :func:`build_train_dataset` returns.

    ``sample_weights``: ``[len(dataset)]`` probabilities for a ``WeightedRandomSampler`` (PDB sampler
    mode), else None; draw ``num_samples`` per epoch (= len(dataset), or the sum of the repeat factors
    in sampler mode). ``val_dataset``: held-out validation set (test transform) or None.
    ``repeat_factors``: PDB factors per training sample (before repetition), or None."""

    dataset: LandmarkDataset
    sample_weights: np.ndarray | None
    val_dataset: LandmarkDataset | None
    num_samples: int
    repeat_factors: np.ndarray | None = None


def _pairs(roots: str | None, sources: str | None, what: str) -> list[tuple[str, str]]:
    if not roots or not sources:
        raise ValueError(f"{what}: root and source must both be set (space-separated lists, paired by position)")
    roots_list, sources_list = roots.split(), sources.split()
    if len(roots_list) != len(sources_list):
        raise ValueError(f"{what}: {len(roots_list)} roots but {len(sources_list)} sources (paired by position)")
    return list(zip(roots_list, sources_list, strict=True))


def _read_lists(roots: str | None, sources: str | None, num_landmarks: int, what: str) -> list[Sample]:
    _pairs(roots, sources, what)
    return read_release_lists(roots, sources, num_landmarks)


def check_decodable(samples: list[Sample]) -> None:
    """Decode every training image once (reduced 8x, which is quick) before training starts, so a damaged
    file is a named error now and not a crash in a worker hours later."""
    bad = []
    for sample in samples:
        if sample.image is not None:
            continue
        if not can_decode(sample.image_path):
            bad.append(f"{sample.source or sample.name}: {sample.image_path}")
    if bad:
        shown = "\n  ".join(bad[:5]) + (f"\n  ... and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ValueError(f"{len(bad)} training image(s) cannot be decoded (damaged or not images):\n  {shown}")


def _synthetic(param: dict, scheme: Scheme) -> list[Sample]:
    syn = param["synthetic"]
    faces = SyntheticFaces(syn["num_images"], seed=syn["seed"], size=param["crop_size"], scheme=scheme.name,
                           occlusion_rate=syn["occlusion_rate"])
    return [faces.sample(i) for i in range(len(faces))]


def holdout_split(samples: list[Sample], fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices): the ``round(fraction * N)`` samples (at least 1 when the
    fraction is > 0) with the smallest hash of (image path, name). Deterministic, independent of the
    seed and of the list order, so the same images are held out in every run."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"train_param.validation.fraction must be in [0, 1), got {fraction}")
    n_val = 0 if fraction == 0 else max(1, int(round(fraction * len(samples))))
    if n_val >= len(samples):
        raise ValueError(f"train_param.validation.fraction {fraction} leaves no training samples "
                         f"out of {len(samples)}")
    keys = [hashlib.blake2b(f"{s.image_path}|{s.name}".encode(), digest_size=8).digest() for s in samples]
    order = sorted(range(len(samples)), key=lambda i: (keys[i], i))
    val = np.sort(np.asarray(order[:n_val], dtype=np.int64))
    train = np.setdiff1d(np.arange(len(samples), dtype=np.int64), val)
    return train, val


def _pdb_bins(is_pdb) -> int | None:
    if is_pdb is None or is_pdb is False:
        return None
    if is_pdb is True:
        return DEFAULT_BINS
    if is_pdb < 1:
        raise ValueError(f"train_param.is_pdb: number of bins must be >= 1 (or null to disable), got {is_pdb}")
    return int(is_pdb)


def default_cache_dir(train_param: dict) -> Path:
    """``train_param.cache_dir`` when set, else ``$LGRN_CACHE_DIR``, else ``.lgrn_cache`` beside the first
    training list file."""
    if train_param.get("cache_dir"):
        return Path(train_param["cache_dir"])
    if os.environ.get("LGRN_CACHE_DIR"):
        return Path(os.environ["LGRN_CACHE_DIR"])
    return Path(train_param["train_source"].split()[0]).resolve().parent / ".lgrn_cache"


def _test_transform(config: dict, scheme: Scheme) -> TestTransform:
    train_param = config["train_param"]
    zoom = (train_param["scale_min"] + train_param["scale_max"]) / 2   # as released: train_param's scale
    return TestTransform(config["test_param"], scheme, zoom=zoom, interpolation=train_param["interpolation"])


def build_train_dataset(config: dict, scheme: Scheme, seed: int = 0, cache_dir: str | Path | None = None,
                        progress: bool = True) -> TrainData:
    """The training set of a resolved config (see :class:`TrainData`).

    Samples: ``train_root``/``train_source`` (space-separated pairs, the release list format) or
    ``dataset: synthetic``. Validation: ``validation.root/source`` lists, or a deterministic
    ``validation.fraction`` of the training samples held out before PDB. PDB when ``is_pdb`` is set:
    ``pdb_mode`` repeat (release: duplicate samples), capped (factors <= ``pdb_cap``) or sampler
    (weights). ``cache: true`` decodes list images once into a memmap (``cache_dir``, default
    :func:`default_cache_dir`). ``augment_on: gpu`` returns raw uint8 images for ``GpuAugment``."""
    tp = config["train_param"]
    num_landmarks = scheme.num_landmarks
    if tp["dataset"] == "synthetic":
        samples = _synthetic(tp, scheme)
    else:
        samples = _read_lists(tp["train_root"], tp["train_source"], num_landmarks,
                              "train_param.train_root/train_source")
        check_decodable(samples)
    if not samples:
        raise ValueError("build_train_dataset: the training set is empty")

    val = tp["validation"]
    val_samples: list[Sample] | None = None
    if val["source"] or val["root"]:
        if val["fraction"]:
            raise ValueError("train_param.validation: set either fraction or root/source, not both")
        val_samples = _read_lists(val["root"], val["source"], num_landmarks, "train_param.validation.root/source")
        train_idx, val_idx = np.arange(len(samples), dtype=np.int64), np.zeros(0, dtype=np.int64)
    else:
        train_idx, val_idx = holdout_split(samples, float(val["fraction"]))

    cache = None
    if tp["cache"]:
        if tp["dataset"] == "synthetic":
            logger.info("train_param.cache: synthetic images are generated in memory; nothing to cache")
        else:
            cache = build_image_cache(samples, cache_dir or default_cache_dir(tp), "train", progress=progress)

    bins = _pdb_bins(tp["is_pdb"])
    factors = weights = None
    index_map = train_idx
    num_samples = int(train_idx.size)
    if bins is not None:
        shapes = np.stack([np.asarray(samples[i].landmarks, dtype=np.float64) for i in train_idx])
        mode = tp["pdb_mode"]
        if mode == "sampler":
            factors = pdb_repeat_factors(shapes, bins)
            weights = weights_from_factors(factors)
            num_samples = int(factors.sum())
        else:
            factors = pdb_repeat_factors(shapes, bins, cap=tp["pdb_cap"] if mode == "capped" else None)
            index_map = np.repeat(train_idx, factors)
            num_samples = int(index_map.size)
        logger.info("PDB (%s, %d bins): %d samples, repeat factors %d..%d, %d draws per epoch",
                    mode, bins, train_idx.size, factors.min(), factors.max(), num_samples)

    transform = RawTransform(scheme) if tp["augment_on"] == "gpu" else TrainTransform(tp, scheme)
    dataset = LandmarkDataset(samples, scheme, transform, seed=seed, cache=cache, index_map=index_map)
    val_dataset = None
    if val_samples is not None:
        val_dataset = LandmarkDataset(val_samples, scheme, _test_transform(config, scheme))
    elif val_idx.size:
        val_dataset = LandmarkDataset(samples, scheme, _test_transform(config, scheme), cache=cache,
                                      index_map=val_idx)
    return TrainData(dataset=dataset, sample_weights=weights, val_dataset=val_dataset,
                     num_samples=num_samples, repeat_factors=factors)


def _attr_path(source: str, explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    candidate = Path(source).with_name(f"{Path(source).stem}_attr.txt")
    return candidate if candidate.is_file() else None


def build_test_dataset(config: dict, scheme: Scheme) -> LandmarkDataset:
    """The test set: ``test_param.val_root``/``val_source`` pairs in annotation order, with subset
    attributes from ``attr_source`` (paired like the sources) or ``<source stem>_attr.txt`` beside each
    source when present; or synthetic test faces (``test_param.dataset: synthetic``)."""
    tp = config["test_param"]
    if tp["dataset"] == "synthetic":
        samples = _synthetic(tp, scheme)
    else:
        pairs = _pairs(tp["val_root"], tp["val_source"], "test_param.val_root/val_source")
        attr_sources = tp["attr_source"].split() if tp["attr_source"] else [None] * len(pairs)
        if len(attr_sources) != len(pairs):
            raise ValueError(f"test_param.attr_source: {len(attr_sources)} files for {len(pairs)} sources")
        samples = []
        for (root, source), attr in zip(pairs, attr_sources, strict=True):
            part = read_release_list(root, source, scheme.num_landmarks)
            attr_path = _attr_path(source, attr)
            if attr_path is not None:
                read_attributes(attr_path, part, scheme.subsets or None)
            samples.extend(part)
    if not samples:
        raise ValueError("build_test_dataset: the test set is empty")
    return LandmarkDataset(samples, scheme, _test_transform(config, scheme))
