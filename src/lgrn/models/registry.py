"""Backbones and heads by name: ``BACKBONES`` (``structure.backbone_name``) and ``HEADS``
(``structure.predictor_name``) map a name to a factory; ``build_backbone`` / ``build_head`` read the
``structure`` section of a resolved config and call it. See docs/models.md.

Backbone contract (what a backbone module in ``lgrn/models/backbones/`` provides):

- an ``nn.Module`` whose factory is ``factory(in_channels: int, structure: dict) -> nn.Module``:
  ``in_channels`` is 3 (colour) or 1 (``structure.is_color: false``); any option of its own (e.g.
  ``structure.width_mult`` for MobileNetV2) is read from ``structure`` by the factory;
- ``forward(images [B, in_channels, H, W]) -> [map1, map2, map3, map4]``: four feature maps at
  strides 4, 8, 16 and 32 (H and W divisible by 32); the heads read the last, stride-32 one;
- ``out_channels``: a tuple of the four maps' channel counts (the head is sized from
  ``out_channels[-1]``), and ``stride = 32``;
- a fresh initialisation in the constructor; nothing is downloaded;
- pretrained handling: state-dict keys as torchvision's network of the same family, without the
  classifier, and the stem convolution as the first state-dict entry, so that
  ``structure.pretrained_path`` (a local torchvision ImageNet file) loads through
  :func:`lgrn.models.backbones.pretrained.load_pretrained_backbone` (classifier dropped, a 3-channel
  stem summed for a 1-channel backbone).

A new backbone is one file in ``lgrn/models/backbones/`` plus one row in ``BACKBONES`` (lower-case
name; names match case-insensitively; other spellings go in ``BACKBONE_ALIASES``). A new head is a
module with ``forward(features [B, C, h, w]) -> landmarks [B, K, 2]`` plus one row in ``HEADS``: its
factory is ``factory(structure, in_channels, feature_size, scheme) -> nn.Module`` with
``feature_size = (crop_size // 32, crop_size // 32)``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from torch import nn

from ..landmarks import Scheme, adjacency_pattern, read_edges
from .backbones.mobilenet import MobileNetV2
from .backbones.pretrained import load_pretrained_backbone
from .backbones.resnet import build_resnet
from .heads import FCHead, GraphHead

BackboneFactory = Callable[[int, dict], nn.Module]
HeadFactory = Callable[[dict, int, tuple[int, int], Scheme], nn.Module]


def _resnet(name: str) -> BackboneFactory:
    def build(in_channels: int, structure: dict) -> nn.Module:
        return build_resnet(name, in_channels)
    return build


def _mobilenetv2(in_channels: int, structure: dict) -> nn.Module:
    return MobileNetV2(in_channels, float(structure.get("width_mult", 1.0)))


# Canonical (lower-case) backbone name -> factory(in_channels, structure).
BACKBONES: dict[str, BackboneFactory] = {
    "resnet18": _resnet("resnet18"),
    "resnet34": _resnet("resnet34"),
    "resnet50": _resnet("resnet50"),
    "mobilenetv2": _mobilenetv2,
}
# Other accepted spellings (lower-cased) -> canonical name. "ResNet34Pure" is the release's plain ResNet-34.
BACKBONE_ALIASES: dict[str, str] = {"resnet34pure": "resnet34", "mobilenet_v2": "mobilenetv2"}


def canonical_backbone_name(name: str) -> str:
    """Map a ``structure.backbone_name`` to a key of ``BACKBONES`` (``resnet18|resnet34|resnet50|mobilenetv2``)."""
    if name == "ResNet34":
        raise ValueError("structure.backbone_name: the release's 'ResNet34' (IBN-a normalisation + CoordConv "
                         "convolutions) is not implemented in lgrn; use 'ResNet34Pure' (the release's plain "
                         "ResNet-34, used by both released configs) or 'resnet34'")
    key = name.lower()
    key = BACKBONE_ALIASES.get(key, key)
    if key not in BACKBONES:
        raise ValueError(f"structure.backbone_name: unknown backbone {name!r}; expected one of "
                         f"{', '.join(['ResNet34Pure', *BACKBONES])}")
    return key


def build_backbone(structure: dict, pretrained: bool = True) -> nn.Module:
    """The backbone named by ``structure.backbone_name``, 1 input channel when ``is_color`` is false,
    ImageNet weights from ``structure.pretrained_path`` when set (otherwise from scratch, as released)."""
    name = canonical_backbone_name(structure["backbone_name"])
    in_channels = 3 if structure.get("is_color", True) else 1
    backbone = BACKBONES[name](in_channels, structure)
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


def _graph_head(structure: dict, in_channels: int, feature_size: tuple[int, int], scheme: Scheme) -> nn.Module:
    gcn = structure.get("gcn_param") or {}
    return GraphHead(in_channels, feature_size, gcn_pattern(structure, scheme), hid_dim=int(gcn.get("hid_dim", 128)),
                     num_layers=int(gcn.get("num_layers", 4)), p_dropout=gcn.get("p_dropout"),
                     edge_weights=gcn.get("edge_weights", "static"))


def _fc_head(structure: dict, in_channels: int, feature_size: tuple[int, int], scheme: Scheme) -> nn.Module:
    return FCHead(in_channels, feature_size, scheme.num_landmarks)


# structure.predictor_name (the release's names) -> factory(structure, in_channels, feature_size, scheme).
HEADS: dict[str, HeadFactory] = {
    "BaseGCNPredictor": _graph_head,   # the L-GRN graph head
    "FCPredictor": _fc_head,           # the FC baseline
}


def build_head(structure: dict, in_channels: int, scheme: Scheme) -> nn.Module:
    """``structure.predictor_name`` -> its head on a ``crop_size // 32`` square map of ``in_channels``."""
    crop_size = int(structure["crop_size"])
    if crop_size % 32 != 0 or crop_size < 32:
        raise ValueError(f"structure.crop_size must be a positive multiple of 32 (backbone stride), got {crop_size}")
    size = (crop_size // 32, crop_size // 32)
    predictor = structure["predictor_name"]
    if predictor not in HEADS:
        raise ValueError(f"structure.predictor_name: unknown head {predictor!r}; expected one of {tuple(HEADS)}")
    return HEADS[predictor](structure, in_channels, size, scheme)
