"""ResNet-18/34/50 backbones returning the four stage feature maps (strides 4, 8, 16, 32), with
state-dict keys identical to torchvision's ResNets minus the classifier (no ``avgpool`` / ``fc``),
so a torchvision ImageNet file loads directly. Initialisation and BatchNorm momenta follow the
release's ``ResNet34Pure`` (L-GRN.md §2.2): Kaiming-normal fan_out convs, BN weight 1 / bias 0,
momentum 0.01 for the stem BN and the projection-shortcut BNs, PyTorch's default 0.1 inside blocks.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# The release sets momentum 0.01 on the stem and projection BNs only (L-GRN.md §2.2).
STEM_BN_MOMENTUM = 0.01
BLOCK_BN_MOMENTUM = 0.1


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    # Keys downsample.0 (conv) / downsample.1 (BN), as in torchvision.
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_channels, momentum=STEM_BN_MOMENTUM))


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels, momentum=BLOCK_BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels, momentum=BLOCK_BN_MOMENTUM)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, torchvision's "v1.5"), 1x1 expand x4 (ResNet-50)."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels, momentum=BLOCK_BN_MOMENTUM)
        self.conv2 = _conv3x3(channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels, momentum=BLOCK_BN_MOMENTUM)
        self.conv3 = nn.Conv2d(channels, channels * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels * self.expansion, momentum=BLOCK_BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet trunk: ``forward(images [B, C, H, W]) -> [out1, out2, out3, out4]`` with strides
    4, 8, 16, 32 and ``out_channels`` channels; H and W must be divisible by 32."""

    stride = 32

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, int, int, int],
                 in_channels: int = 3) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=STEM_BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        width_in = 64
        stages = []
        for index, (width, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if index == 0 else 2
            width_out = width * block.expansion
            downsample = None
            if stride != 1 or width_in != width_out:
                downsample = _projection(width_in, width_out, stride)
            modules = [block(width_in, width, stride, downsample)]
            modules += [block(width_out, width) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*modules))
            width_in = width_out
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = tuple(w * block.expansion for w in (64, 128, 256, 512))
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        out1 = self.layer1(x)
        out2 = self.layer2(out1)
        out3 = self.layer3(out2)
        out4 = self.layer4(out3)
        return [out1, out2, out3, out4]


RESNET_LAYOUTS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


def build_resnet(name: str, in_channels: int = 3) -> ResNet:
    """``resnet18`` / ``resnet34`` / ``resnet50``, freshly initialised as released."""
    if name not in RESNET_LAYOUTS:
        raise ValueError(f"unknown ResNet {name!r}; expected one of {sorted(RESNET_LAYOUTS)}")
    block, layers = RESNET_LAYOUTS[name]
    return ResNet(block, layers, in_channels)


# Classifier entries of torchvision files that our backbones deliberately do not have.
CLASSIFIER_PREFIXES = ("fc.", "classifier.")


def load_pretrained_backbone(backbone: nn.Module, path: str | Path) -> None:
    """Load a local torchvision-format ImageNet state dict into ``backbone`` (``weights_only=True``).

    Classifier entries (``fc.*`` / ``classifier.*``) are dropped; every other missing or unexpected
    key (a missing BN ``num_batches_tracked`` counter excepted) or shape mismatch raises
    ``ValueError`` listing them. A 3-channel stem loaded into a 1-channel (grayscale) backbone is
    summed over its input channels, which is exact for a gray image fed as three equal channels.
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
