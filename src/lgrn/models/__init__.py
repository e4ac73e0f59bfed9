"""Models (docs/models.md): backbones (torchvision-compatible ResNets, a MobileNetV2 for CPU) and
heads (the L-GRN graph head with static or dynamic edge weights, the FC baseline) by name from
:mod:`.registry`; ``build_model(config)`` (:mod:`.model`, a resolved config); checkpoint reading and
``load_model`` (:mod:`.loading`, the only module here that reads files or configs); the state-dict
converter for the authors' checkpoints (:mod:`.convert`); a MAC counter (:mod:`.flops`)."""
from .backbones import MobileNetV2, ResNet, build_resnet, load_pretrained_backbone
from .convert import (convert_release_checkpoint, convert_release_state_dict, dropped_release_keys,
                      is_release_checkpoint, release_state_dict)
from .flops import count_macs
from .graph import EdgeSoftmax, GraphConvBlock, RelationLearner, ResGraphBlock, SemGCN, SemGraphConv
from .heads import FCHead, GraphHead, MapToNode
from .loading import (CheckpointError, ConvertedCheckpoint, convert_checkpoint_file, load_checkpoint, load_model,
                      model_from_checkpoint)
from .model import (LandmarkModel, build_model, count_parameters, load_state_dict_strict, scheme_for_structure,
                    strip_module_prefix)
from .registry import (BACKBONE_ALIASES, BACKBONES, HEADS, build_backbone, build_head, canonical_backbone_name,
                       gcn_pattern)

__all__ = ["LandmarkModel", "build_model", "build_backbone", "build_head", "load_model", "model_from_checkpoint",
           "load_checkpoint", "CheckpointError", "convert_checkpoint_file", "ConvertedCheckpoint",
           "count_parameters", "canonical_backbone_name", "gcn_pattern", "load_state_dict_strict",
           "strip_module_prefix", "scheme_for_structure", "BACKBONES", "BACKBONE_ALIASES", "HEADS",
           "ResNet", "build_resnet", "load_pretrained_backbone", "MobileNetV2", "GraphHead", "FCHead", "MapToNode",
           "SemGCN", "SemGraphConv", "EdgeSoftmax", "GraphConvBlock", "ResGraphBlock", "RelationLearner",
           "convert_release_state_dict", "convert_release_checkpoint", "dropped_release_keys",
           "release_state_dict", "is_release_checkpoint", "count_macs"]
