"""ImageNet weights for a backbone: ``structure.pretrained_path`` names a local torchvision-format
state dict (nothing is ever downloaded), read with ``torch.load(weights_only=True)``.

This is the one file read below :func:`lgrn.models.build_model` (which honours ``pretrained_path``);
every other model file (checkpoints, authors' checkpoints) is read by :mod:`lgrn.models.loading`.
See docs/models.md, "Backbones" (ImageNet weights).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# Classifier entries of torchvision files that our backbones deliberately do not have.
CLASSIFIER_PREFIXES = ("fc.", "classifier.")


def load_pretrained_backbone(backbone: nn.Module, path: str | Path) -> None:
    """Load a local torchvision-format ImageNet state dict into ``backbone`` (``weights_only=True``).

    Classifier entries (``fc.*`` / ``classifier.*``) are dropped; every other missing or unexpected
    key (a missing BN ``num_batches_tracked`` counter excepted) or shape mismatch raises
    ``ValueError`` listing them. A 3-channel stem loaded into a 1-channel (grayscale) backbone is
    summed over its input channels, which is exact for a gray image fed as three equal channels.
    The stem is the backbone's first state-dict entry (the backbone contract, :mod:`lgrn.models.registry`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"structure.pretrained_path: file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # re-raised with the file named; torch's messages omit it
        raise ValueError(f"structure.pretrained_path: {path} is not a loadable weights-only "
                         f"PyTorch state dict ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"structure.pretrained_path: {path} does not hold a state dict of tensors")
    state = {k: v for k, v in state.items() if not k.startswith(CLASSIFIER_PREFIXES)}
    own = backbone.state_dict()
    stem_key = next(iter(own))  # the first conv (conv1.weight / features.0.0.weight)
    if stem_key in state and own[stem_key].shape[1] == 1 and state[stem_key].shape[1] == 3:
        state[stem_key] = state[stem_key].sum(dim=1, keepdim=True)
    # torchvision's older ImageNet files predate BN's num_batches_tracked counter; it only feeds
    # momentum=None averaging, which we never use, so a missing counter starts at zero.
    for key in own:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = own[key]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        raise ValueError(f"structure.pretrained_path: {path} does not match the backbone:\n"
                         f"  missing keys: {missing}\n  unexpected keys: {unexpected}\n"
                         f"  shape mismatches: {mismatched}")
    backbone.load_state_dict(state, strict=True)
