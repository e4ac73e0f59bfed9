"""Training checkpoints (L-GRN.md §6.3): the release's keys (``epoch`` = completed epochs,
``optimizer``, ``state_dict``) plus ``config``, ``scheme``, ``scheduler``, ``rng``,
``lgrn_version``, ``best_nme`` (so the best tracker survives a resume, bug 8), and for an exact
resume the effective ``seed``, the ``iteration`` reached inside an interrupted epoch and that
epoch's running sums. Plain Python types and tensors only, so ``weights_only=True`` loads them.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from .runtime import capture_rng_state

logger = logging.getLogger("lgrn")

LATEST = "checkpoint.pth.tar"
BEST = "checkpoint_best.pth.tar"
SNAPSHOT = re.compile(r"^checkpoint_(\d+)\.pth\.tar$")


def snapshot_name(epoch: int) -> str:
    return f"checkpoint_{epoch}.pth.tar"


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP / torch.compile wrappers (its state-dict keys carry no prefix)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod  # torch.compile
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def build_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler_state: dict, config: dict,
                     scheme: Any, epoch: int, best_nme: float, seed: int, iteration: int = 0,
                     epoch_sums: dict[str, float] | None = None, selection: str = "") -> dict[str, Any]:
    """The checkpoint dict written by the trainer (see the module docstring for the keys)."""
    return {
        "epoch": int(epoch),
        "optimizer": optimizer.state_dict(),
        "state_dict": unwrap(model).state_dict(),
        "config": config,
        "scheme": scheme.to_dict(),
        "scheduler": scheduler_state,
        "rng": capture_rng_state(),
        "lgrn_version": __version__,
        "best_nme": float(best_nme),
        "seed": int(seed),
        "iteration": int(iteration),
        "epoch_sums": {k: float(v) for k, v in (epoch_sums or {}).items()},
        "selection": selection,
    }


def list_checkpoints(directory: str | Path) -> list[Path]:
    """``checkpoint_<int>.pth.tar`` sorted by the integer, then the latest and the best when present
    (the release's filter crashed on ``checkpoint_best``, bug 7)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {directory}")
    numbered = sorted((int(m.group(1)), p) for p in directory.iterdir() if (m := SNAPSHOT.match(p.name)))
    paths = [p for _, p in numbered]
    paths += [directory / name for name in (LATEST, BEST) if (directory / name).is_file()]
    return paths
