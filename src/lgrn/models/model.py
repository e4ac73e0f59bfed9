"""The landmark model (backbone + head) and its builders: ``build_model(config)`` turns the
``structure`` section of a resolved config into a :class:`LandmarkModel` whose forward maps images
``[B, C, H, W]`` to landmarks ``[B, K, 2]`` in input pixels (L-GRN.md §2.1); ``load_model`` rebuilds
one from an lgrn checkpoint or an authors' checkpoint.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..landmarks import Scheme, adjacency_pattern, read_edges
from .heads import FCHead, GraphHead
from .mobilenet import MobileNetV2
from .resnet import build_resnet, load_pretrained_backbone

# Lower-cased backbone_name -> canonical name. "ResNet34Pure" is the release's plain ResNet-34.
BACKBONE_ALIASES = {
    "resnet34pure": "resnet34", "resnet18": "resnet18", "resnet34": "resnet34", "resnet50": "resnet50",
    "mobilenetv2": "mobilenetv2", "mobilenet_v2": "mobilenetv2",
}
HEADS = ("BaseGCNPredictor", "FCPredictor")


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


def canonical_backbone_name(name: str) -> str:
    """Map a ``structure.backbone_name`` to ``resnet18|resnet34|resnet50|mobilenetv2``."""
    if name == "ResNet34":
        raise ValueError("structure.backbone_name: the release's 'ResNet34' (IBN-a normalisation + CoordConv "
                         "convolutions) is not implemented in lgrn; use 'ResNet34Pure' (the release's plain "
                         "ResNet-34, used by both released configs) or 'resnet34'")
    key = name.lower()
    if key not in BACKBONE_ALIASES:
        raise ValueError(f"structure.backbone_name: unknown backbone {name!r}; expected one of "
                         "ResNet34Pure, resnet18, resnet34, resnet50, mobilenetv2")
    return BACKBONE_ALIASES[key]


def build_backbone(structure: dict, pretrained: bool = True) -> nn.Module:
    """The backbone named by ``structure.backbone_name``, 1 input channel when ``is_color`` is false,
    ImageNet weights from ``structure.pretrained_path`` when set (otherwise from scratch, as released)."""
    name = canonical_backbone_name(structure["backbone_name"])
    in_channels = 3 if structure.get("is_color", True) else 1
    if name == "mobilenetv2":
        backbone: nn.Module = MobileNetV2(in_channels, float(structure.get("width_mult", 1.0)))
    else:
        backbone = build_resnet(name, in_channels)
    if pretrained and structure.get("pretrained_path"):
        load_pretrained_backbone(backbone, structure["pretrained_path"])
    return backbone


def gcn_pattern(structure: dict, scheme: Scheme) -> np.ndarray:
    """Adjacency pattern ``[K, K]`` of the graph head: ``gcn_param.graph_file`` when set, else the
    scheme's graph for ``gcn_param.top_k`` (undirected union + self-loops)."""
    gcn = structure.get("gcn_param") or {}
    if gcn.get("graph_file"):
        edges = read_edges(gcn["graph_file"], scheme.num_landmarks)
    else:
        edges = scheme.gcn_edges(gcn.get("top_k"))
    return adjacency_pattern(edges, scheme.num_landmarks)


def build_head(structure: dict, in_channels: int, scheme: Scheme) -> nn.Module:
    """``structure.predictor_name`` -> GraphHead / FCHead on a ``crop_size // 32`` square map."""
    crop_size = int(structure["crop_size"])
    if crop_size % 32 != 0 or crop_size < 32:
        raise ValueError(f"structure.crop_size must be a positive multiple of 32 (backbone stride), got {crop_size}")
    size = (crop_size // 32, crop_size // 32)
    predictor = structure["predictor_name"]
    if predictor == "BaseGCNPredictor":
        gcn = structure.get("gcn_param") or {}
        return GraphHead(in_channels, size, gcn_pattern(structure, scheme), hid_dim=int(gcn.get("hid_dim", 128)),
                         num_layers=int(gcn.get("num_layers", 4)), p_dropout=gcn.get("p_dropout"),
                         edge_weights=gcn.get("edge_weights", "static"))
    if predictor == "FCPredictor":
        return FCHead(in_channels, size, scheme.num_landmarks)
    raise ValueError(f"structure.predictor_name: unknown head {predictor!r}; expected one of {HEADS}")


def build_model(config: dict, scheme: Scheme | None = None, pretrained: bool = True) -> LandmarkModel:
    """Build the model described by ``config["structure"]`` (a config from ``lgrn.config.load_config``).

    ``scheme`` overrides the scheme the config names (``load_model`` passes the one stored in the
    checkpoint, so a custom scheme file need not exist at load time). ``pretrained=False`` skips
    ``structure.pretrained_path`` (used when checkpoint weights replace it anyway).
    """
    from ..config import get_scheme_for_config

    if scheme is None:
        scheme = get_scheme_for_config(config)
    structure = config["structure"]
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


def load_model(path: str | Path, config: str | Path | dict | None = None,
               map_location: Any = "cpu") -> LandmarkModel:
    """A model in eval mode from an lgrn checkpoint (its stored config and scheme; ``config``, when
    given, replaces the stored config) or from an authors' checkpoint (``config`` required: a YAML
    path or a config dict; the weights are converted with ``convert_release_state_dict``)."""
    from ..checkpoint import load_checkpoint

    return model_from_checkpoint(load_checkpoint(path, map_location=map_location), config, str(path))


def model_from_checkpoint(checkpoint: dict, config: str | Path | dict | None = None,
                          path: str = "checkpoint") -> LandmarkModel:
    """:func:`load_model` on a checkpoint dict already read with ``lgrn.checkpoint.load_checkpoint``
    (``path`` names it in error messages)."""
    from ..config import load_config, resolve_config
    from ..landmarks import scheme_from_dict
    from .convert import convert_release_state_dict, is_release_checkpoint

    if isinstance(config, (str, Path)):
        config = load_config(config)
    elif isinstance(config, dict):
        config = resolve_config(config, source="load_model(config=...)")
    if is_release_checkpoint(checkpoint):
        if config is None:
            raise ValueError(f"{path}: this is an authors' (release-layout) checkpoint; it stores no config, so "
                             "pass config= (the YAML it was trained with), or convert it once with "
                             "`lgrn convert-checkpoint IN OUT --config CFG`")
        state = convert_release_state_dict(checkpoint, config)
        model = build_model(config, pretrained=False)
    else:
        if "state_dict" not in checkpoint or "config" not in checkpoint:
            raise ValueError(f"{path}: not an lgrn checkpoint (needs 'state_dict' and 'config'; found keys "
                             f"{sorted(checkpoint)[:10]})")
        scheme = scheme_from_dict(checkpoint["scheme"]) if checkpoint.get("scheme") else None
        config = config if config is not None else resolve_config(checkpoint["config"], source=f"{path}: config")
        model = build_model(config, scheme, pretrained=False)
        state = strip_module_prefix(checkpoint["state_dict"])
    load_state_dict_strict(model, state, path)
    return model.eval()


def strip_module_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the ``module.`` prefix (DataParallel / DistributedDataParallel) when every key has it."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return dict(state_dict)
