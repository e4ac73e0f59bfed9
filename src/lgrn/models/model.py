"""The landmark model (backbone + head) and its builder: ``build_model(config)`` turns the
``structure`` section of a resolved config into a :class:`LandmarkModel` whose forward maps images
``[B, C, H, W]`` to landmarks ``[B, K, 2]`` in input pixels (docs/models.md). Backbones and heads
come by name from :mod:`lgrn.models.registry`; files are read by :mod:`lgrn.models.loading`.

Also the state-dict helpers shared by loading, conversion and the engine: strict loading with one
listed error, and removal of DataParallel's ``module.`` prefix.
"""
from __future__ import annotations

import torch
from torch import nn

from ..landmarks import Scheme, get_scheme, scheme_for_num_landmarks
from .registry import build_backbone, build_head


class LandmarkModel(nn.Module):
    """``forward(images [B, C, H, W] float32) -> landmarks [B, K, 2]`` (x, y) in input pixels.

    Children ``backbone`` (returns four stage maps) and ``head`` (reads the stride-32 one);
    attributes ``num_landmarks``, ``scheme``, ``config`` (the resolved config it was built from).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, scheme: Scheme, config: dict) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.scheme = scheme
        self.config = config
        self.num_landmarks = scheme.num_landmarks

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images)[-1])


def scheme_for_structure(structure: dict) -> Scheme:
    """The landmark scheme ``structure`` names: ``structure.scheme`` (a built-in name or a scheme
    file), else the built-in scheme for ``structure.num_kpts``; its size must equal ``num_kpts``.
    The same rule as ``lgrn.config.get_scheme_for_config`` (which raises ``ConfigError``)."""
    scheme = get_scheme(structure["scheme"]) if structure["scheme"] else scheme_for_num_landmarks(structure["num_kpts"])
    if scheme.num_landmarks != structure["num_kpts"]:
        raise ValueError(f"structure.scheme {scheme.name!r} has {scheme.num_landmarks} landmarks but "
                         f"structure.num_kpts is {structure['num_kpts']}")
    return scheme


def build_model(config: dict, scheme: Scheme | None = None, pretrained: bool = True) -> LandmarkModel:
    """Build the model described by ``config["structure"]``.

    ``config`` is a resolved config (``lgrn.config.load_config`` / ``resolve_config``); a raw dict must
    be resolved first. ``scheme`` overrides the scheme the config names (``load_model`` passes the one
    stored in the checkpoint, so a custom scheme file need not exist at load time). ``pretrained=False``
    skips ``structure.pretrained_path`` (used when checkpoint weights replace it anyway).
    """
    structure = config["structure"]
    if scheme is None:
        scheme = scheme_for_structure(structure)
    if scheme.num_landmarks != structure["num_kpts"]:
        raise ValueError(f"scheme {scheme.name!r} has {scheme.num_landmarks} landmarks but structure.num_kpts "
                         f"is {structure['num_kpts']}")
    backbone = build_backbone(structure, pretrained)
    head = build_head(structure, backbone.out_channels[-1], scheme)
    return LandmarkModel(backbone, head, scheme, config)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters; BN running statistics are buffers and not counted."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def load_state_dict_strict(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with one error listing missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        raise ValueError(f"{source}: the weights do not match the model built from its config:\n"
                         f"  missing keys: {missing}\n  unexpected keys: {unexpected}\n"
                         f"  shape mismatches: {mismatched}")
    model.load_state_dict(state_dict, strict=True)


def strip_module_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the ``module.`` prefix (DataParallel / DistributedDataParallel) when every key has it."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return dict(state_dict)
