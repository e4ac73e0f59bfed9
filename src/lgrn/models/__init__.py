"""Models: torchvision-compatible ResNet backbones and a MobileNetV2 for CPU, the L-GRN graph head
(static or dynamic edge weights) and the FC baseline, ``build_model(config)``, ``load_model`` and
the converter for the authors' checkpoints."""
from .convert import convert_release_checkpoint, convert_release_state_dict, is_release_checkpoint
from .flops import count_macs
from .graph import EdgeSoftmax, GraphConvBlock, RelationLearner, ResGraphBlock, SemGCN, SemGraphConv
from .heads import FCHead, GraphHead, MapToNode
from .mobilenet import MobileNetV2
from .model import (LandmarkModel, build_backbone, build_head, build_model, canonical_backbone_name,
                    count_parameters, gcn_pattern, load_model, load_state_dict_strict, model_from_checkpoint)
from .resnet import ResNet, build_resnet, load_pretrained_backbone

__all__ = ["LandmarkModel", "build_model", "build_backbone", "build_head", "load_model", "model_from_checkpoint", "count_parameters",
           "canonical_backbone_name", "gcn_pattern", "load_state_dict_strict", "ResNet", "build_resnet",
           "load_pretrained_backbone", "MobileNetV2", "GraphHead", "FCHead", "MapToNode", "SemGCN",
           "SemGraphConv", "EdgeSoftmax", "GraphConvBlock", "ResGraphBlock", "RelationLearner",
           "convert_release_state_dict", "convert_release_checkpoint", "is_release_checkpoint", "count_macs"]
