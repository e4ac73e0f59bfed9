"""Backbones: one module per network family. Each follows the backbone contract written in
:mod:`lgrn.models.registry` (and docs/models.md, "Adding a backbone") and is reachable by name through
one row of ``lgrn.models.registry.BACKBONES``."""
from .mobilenet import MobileNetV2
from .pretrained import load_pretrained_backbone
from .resnet import ResNet, build_resnet

__all__ = ["MobileNetV2", "ResNet", "build_resnet", "load_pretrained_backbone"]
