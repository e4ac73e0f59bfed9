"""Optimiser and learning-rate schedule as released (docs/training.md, "Training as released, and
what differs"): SGD with the config's kwargs on all parameters, MultiStepLR x gamma, stepped AFTER
each epoch so the decays land after epochs 200 and 350 complete (the intended schedule);
``scheduler.release_early_decay: true`` moves every milestone one epoch earlier, which is what the
released code does on modern PyTorch (bug 4).
"""
from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from torch import nn


def build_optimizer(model: nn.Module, train_param: dict) -> torch.optim.Optimizer:
    """``train_param.optimizer.type`` names a ``torch.optim`` class (SGD as released); its kwargs
    are passed unchanged; every parameter is optimised (weight decay included, as released)."""
    spec = train_param["optimizer"]
    name = spec["type"]
    cls = getattr(torch.optim, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ValueError(f"train_param.optimizer.type: unknown optimizer {name!r} "
                         "(a torch.optim class name such as SGD or AdamW)")
    try:
        return cls(model.parameters(), **spec["kwargs"])
    except TypeError as exc:
        raise ValueError(f"train_param.optimizer.kwargs for {name}: {exc}") from None


def milestones_for(train_param: dict) -> list[int]:
    """The scheduler milestones, shifted one epoch earlier with ``release_early_decay``."""
    scheduler = train_param["scheduler"]
    milestones = [int(m) for m in scheduler["milestones"]]
    if scheduler["release_early_decay"]:
        milestones = [m - 1 for m in milestones]
    return milestones


def build_scheduler(optimizer: torch.optim.Optimizer, train_param: dict) -> torch.optim.lr_scheduler.MultiStepLR:
    """MultiStepLR(milestones, gamma); the trainer calls ``step()`` once after every epoch."""
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones_for(train_param),
                                                gamma=float(train_param["scheduler"]["gamma"]))


def scheduler_state(scheduler: torch.optim.lr_scheduler.LRScheduler) -> dict[str, Any]:
    """The scheduler's state with plain types only (weights_only-safe checkpoints)."""
    state = dict(scheduler.state_dict())
    if isinstance(state.get("milestones"), Counter):
        state["milestones"] = {int(k): int(v) for k, v in state["milestones"].items()}
    return state


def load_scheduler_state(scheduler: torch.optim.lr_scheduler.LRScheduler, state: dict[str, Any]) -> None:
    state = dict(state)
    if isinstance(state.get("milestones"), dict):
        state["milestones"] = Counter({int(k): int(v) for k, v in state["milestones"].items()})
    scheduler.load_state_dict(state)


def lr_per_epoch(train_param: dict, epochs: int | None = None) -> list[float]:
    """The learning rate each epoch trains with, from a throw-away optimiser (documentation,
    tests and the log)."""
    epochs = int(train_param["scheduler"]["epochs"] if epochs is None else epochs)
    param = nn.Parameter(torch.zeros(1))
    lr = float(train_param["optimizer"]["kwargs"].get("lr", 0.01))
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = build_scheduler(optimizer, train_param)
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs
