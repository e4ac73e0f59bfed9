"""Datasets and loaders for the trainer: unpacks what ``lgrn.data.dataset.build_train_dataset``
returns (train set, PDB sampler weights, optional validation split), builds the epoch-seeded
training loader and picks the best-checkpoint selection set (validation when configured, else the
test set as released, L-GRN.md §6.2).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader

from .distributed import DistContext, EpochDataset, EpochSampler

SELECTION_TEST = ("test set, every snapshot_freq epochs (the release's rule, L-GRN.md §6.2: optimistic, "
                  "the test set chooses the checkpoint)")
SELECTION_VALIDATION = "validation split ({}), every snapshot_freq epochs; the test set is evaluated once at the end"


@dataclass
class TrainingData:
    """The sets one training run uses."""

    train: Any
    sample_weights: Any
    num_draws: int | None
    validation: Any
    test: Any

    @property
    def selection(self) -> tuple[Any, str, str]:
        """(dataset, short name, the rule in words) used to pick ``checkpoint_best``."""
        if self.validation is not None:
            return self.validation, "validation", SELECTION_VALIDATION.format(len(self.validation))
        return self.test, "test", SELECTION_TEST


def build_training_data(config: dict, scheme: Any, seed: int) -> TrainingData:
    """Train / validation / test sets from the config (imports the data package lazily)."""
    from ..data.dataset import build_test_dataset, build_train_dataset

    built = build_train_dataset(config, scheme, seed=seed)
    if isinstance(built, tuple):  # the older (dataset, weights) contract
        train, weights = built[0], built[1]
        validation = built[2] if len(built) > 2 else None
        num_draws = None
    else:
        train = built.dataset
        weights = getattr(built, "sample_weights", None)
        validation = getattr(built, "val_dataset", None)
        num_draws = getattr(built, "num_samples", None) if weights is not None else None
    if weights is not None and num_draws is None:
        num_draws = len(weights)
    return TrainingData(train=train, sample_weights=weights, num_draws=num_draws, validation=validation,
                        test=build_test_dataset(config, scheme))


def build_train_loader(data: TrainingData, train_param: dict, seed: int, ctx: DistContext,
                       pin_memory: bool = False) -> tuple[DataLoader, EpochSampler]:
    """The training DataLoader: epoch-seeded sampler (sharded under DDP), batch size and drop_last as
    released, workers from the config (persistent when > 0)."""
    sampler = EpochSampler(len(data.train), seed=seed, shuffle=True, rank=ctx.rank, world_size=ctx.world_size,
                           weights=data.sample_weights, num_draws=data.num_draws)
    batch_size = int(train_param["batch_size"])
    if sampler.per_rank < batch_size:
        raise ValueError(f"train_param.batch_size {batch_size} is larger than the {sampler.per_rank} training "
                         f"samples per process (drop_last would leave no iteration)")
    workers = int(train_param["workers"])
    generator = torch.Generator()
    generator.manual_seed(seed)  # the loader's worker base seed; augmentation is seeded per item anyway
    loader = DataLoader(EpochDataset(data.train), batch_size=batch_size, sampler=sampler, num_workers=workers,
                        drop_last=True, pin_memory=pin_memory, persistent_workers=workers > 0,
                        generator=generator)
    return loader, sampler
