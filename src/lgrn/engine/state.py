"""Training checkpoints (docs/training.md, "Checkpoints and exact resume").

``checkpoint.pth.tar`` (the latest) and ``checkpoint_<epoch>.pth.tar`` (snapshots) hold the release's
keys (``epoch`` = completed epochs, ``optimizer``, ``state_dict``) plus ``config``, ``scheme``,
``scheduler``, ``rng``, ``lgrn_version``, ``best_nme`` (so the best tracker survives a resume, bug 8),
and for an exact resume the effective ``seed``, the ``iteration`` reached inside an interrupted epoch
and that epoch's running sums. ``checkpoint_best.pth.tar`` holds the weights, ``config``, ``scheme``,
``epoch``, ``best_nme``, ``seed``, ``selection`` and ``lgrn_version`` only, marked ``"role": "best"``:
the resume state lives in the latest checkpoint alone. Plain Python types and tensors only, so
``weights_only=True`` loads them.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._version import __version__
from .runtime import capture_rng_state

logger = logging.getLogger("lgrn")

LATEST = "checkpoint.pth.tar"
BEST = "checkpoint_best.pth.tar"
# The keys a best checkpoint keeps (no optimizer, scheduler, rng, iteration or epoch sums).
BEST_KEYS = ("epoch", "state_dict", "config", "scheme", "lgrn_version", "best_nme", "seed", "selection")
BEST_ROLE = "best"
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


def best_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """The ``checkpoint_best.pth.tar`` form of a full training checkpoint ``state``: weights, config
    and metrics (:data:`BEST_KEYS`), marked ``"role": "best"``; it cannot be resumed from."""
    return {**{key: state[key] for key in BEST_KEYS}, "role": BEST_ROLE}


def is_best_checkpoint(state: dict[str, Any]) -> bool:
    """True for a checkpoint written by :func:`best_checkpoint` (weights and metrics only)."""
    return state.get("role") == BEST_ROLE


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
