"""Data for the trainer: the training loader built from ``lgrn.data.dataset.TrainData`` (the record
``build_train_dataset`` returns: training set, PDB sampler weights, optional validation split) and the
best-checkpoint selection set (the validation split when configured, else the test set as released;
docs/training.md, "Choosing the best checkpoint").
"""
from __future__ import annotations

from typing import Any

import torch

from ..data.dataset import TrainData
from .distributed import DistContext, EpochDataset, EpochSampler
from .runtime import EngineDataLoader

SELECTION_TEST = ("test set, every snapshot_freq epochs (the release's rule, docs/training.md: optimistic, "
                  "the test set chooses the checkpoint)")
SELECTION_VALIDATION = "validation split ({}), every snapshot_freq epochs; the test set is evaluated once at the end"


def selection_set(data: TrainData, test_set: Any) -> tuple[Any, str, str]:
    """``(dataset, short name, the rule in words)`` used to pick ``checkpoint_best``: the validation
    split of ``data`` when there is one, else ``test_set``."""
    if data.val_dataset is not None:
        return data.val_dataset, "validation", SELECTION_VALIDATION.format(len(data.val_dataset))
    return test_set, "test", SELECTION_TEST


def selection_text(selection: str) -> str:
    """The rule in words for the short name a checkpoint records (``"test"`` or ``"validation"``)."""
    return SELECTION_TEST if selection == "test" else "validation split (train_param.validation)"


def build_train_loader(data: TrainData, train_param: dict, seed: int, ctx: DistContext,
                       pin_memory: bool = False) -> tuple[EngineDataLoader, EpochSampler]:
    """The training DataLoader: epoch-seeded sampler (sharded under DDP; PDB-weighted draws of
    ``data.num_samples`` per epoch in sampler mode), batch size and drop_last as released, workers
    from the config (persistent when > 0)."""
    weighted = data.sample_weights is not None
    sampler = EpochSampler(len(data.dataset), seed=seed, shuffle=True, rank=ctx.rank, world_size=ctx.world_size,
                           weights=data.sample_weights, num_draws=data.num_samples if weighted else None)
    batch_size = int(train_param["batch_size"])
    if sampler.per_rank < batch_size:
        raise ValueError(f"train_param.batch_size {batch_size} is larger than the {sampler.per_rank} training "
                         f"samples per process (drop_last would leave no iteration)")
    workers = int(train_param["workers"])
    generator = torch.Generator()
    generator.manual_seed(seed)  # the loader's worker base seed; augmentation is seeded per item anyway
    loader = EngineDataLoader(EpochDataset(data.dataset), batch_size=batch_size, sampler=sampler,
                              num_workers=workers, drop_last=True, pin_memory=pin_memory,
                              persistent_workers=workers > 0, generator=generator)
    return loader, sampler
