"""Distributed helpers: process-group set-up from torchrun's environment (gloo on CPU, nccl on GPU),
epoch-seeded samplers whose order is a function of (seed, epoch) only - for one process or a shard
per rank, uniform or PDB-weighted - evaluation shards that cover every image exactly once, object
gathering, and the clean worker shutdown (barrier, destroy_process_group, ``os._exit``).

Single-process runs go through the same code with ``world_size == 1``, so there is one training
path, not a distributed copy of it.
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Sampler

logger = logging.getLogger("lgrn")


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size`` (``enabled`` when > 1 process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    def tensor(self, values: list[float]) -> torch.Tensor:
        """A float64 tensor where this backend reduces it (nccl: the local GPU)."""
        device = torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")
        return torch.tensor(values, dtype=torch.float64, device=device)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistContext:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1), else a single process.

    Backend: nccl for CUDA, gloo on CPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, backend=dist.get_backend())


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def all_gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj`` in rank order (a one-element list without a process group)."""
    if not ctx.enabled:
        return [obj]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def all_reduce_mean(values: Sequence[float], ctx: DistContext) -> list[float]:
    """Mean of per-rank scalars (training loss logging)."""
    if not ctx.enabled:
        return [float(v) for v in values]
    tensor = ctx.tensor([float(v) for v in values])
    dist.all_reduce(tensor)
    return (tensor / ctx.world_size).cpu().tolist()


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True on every rank when ``flag`` is true on any rank (a Ctrl-C seen by one worker stops all
    of them at the same step)."""
    if not ctx.enabled:
        return bool(flag)
    tensor = ctx.tensor([1.0 if flag else 0.0])
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item() > 0)


def shutdown(ctx: DistContext) -> None:
    """Barrier then destroy the process group (no-op for a single process)."""
    if ctx.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def exit_worker(code: int) -> None:
    """Flush logs and standard streams, then leave at once with ``os._exit``: a distributed worker
    that runs normal interpreter teardown aborts now and then (gloo/nccl threads at exit)."""
    for handler in list(logging.getLogger("lgrn").handlers) + list(logging.getLogger().handlers):
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class EpochSampler(Sampler):
    """Training order as a pure function of (seed, epoch): a permutation (or a PDB-weighted draw with
    replacement) from a generator seeded by ``seed`` and ``epoch``, padded to a multiple of
    ``world_size`` like DistributedSampler and split by stride across ranks.

    Yields ``(epoch, index)`` pairs so the dataset can seed augmentation per epoch even inside
    persistent DataLoader workers (see :class:`EpochDataset`). ``skip(n)`` drops the first ``n``
    indices of the next pass: an exact mid-epoch resume."""

    def __init__(self, num_samples: int, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1,
                 weights: Sequence[float] | torch.Tensor | None = None, num_draws: int | None = None):
        if num_samples <= 0:
            raise ValueError("the training set is empty")
        self.num_samples = num_samples
        self.seed = int(seed)
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        if self.weights is not None and len(self.weights) != num_samples:
            raise ValueError(f"{len(self.weights)} sample weights for {num_samples} samples")
        self.num_draws = num_draws if num_draws is not None else num_samples
        self.epoch = 0
        self._skip = 0
        total = self.num_draws if self.weights is not None else num_samples
        self.per_rank = -(-total // world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def skip(self, count: int) -> None:
        self._skip = int(count)

    def global_order(self) -> list[int]:
        """All ranks' indices for this epoch (before padding and splitting)."""
        generator = torch.Generator()
        # Distinct streams per (seed, epoch); the large odd multiplier keeps nearby seeds apart.
        generator.manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.weights is not None:
            return torch.multinomial(self.weights, self.num_draws, replacement=True, generator=generator).tolist()
        if self.shuffle:
            return torch.randperm(self.num_samples, generator=generator).tolist()
        return list(range(self.num_samples))

    def rank_order(self) -> list[int]:
        order = self.global_order()
        padded = self.per_rank * self.world_size
        order = order + order[: padded - len(order)]
        return order[self.rank::self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self.rank_order()[self._skip:]
        self._skip = 0
        return iter([(self.epoch, index) for index in order])

    def __len__(self) -> int:
        return self.per_rank - self._skip


class EpochDataset(Dataset):
    """Wraps a LandmarkDataset so each item is fetched with the epoch the sampler sent along with
    its index (``set_epoch`` on the main-process copy never reaches persistent workers)."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if getattr(self.dataset, "epoch", None) != epoch:
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


def shard_indices(num_items: int, ctx: DistContext) -> list[int]:
    """A contiguous slice of ``range(num_items)`` per rank, no padding: together the ranks cover
    every index exactly once (evaluation)."""
    per_rank = -(-num_items // ctx.world_size)
    start = min(ctx.rank * per_rank, num_items)
    return list(range(start, min(start + per_rank, num_items)))
