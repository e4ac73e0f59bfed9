"""ResNet-18/34/50 backbones returning the four stage feature maps (strides 4, 8, 16, 32), with
state-dict keys identical to torchvision's ResNets minus the classifier (no ``avgpool`` / ``fc``), so a
torchvision ImageNet file loads directly (:mod:`lgrn.models.backbones.pretrained`).

Initialisation and BatchNorm momenta follow the release's ``ResNet34Pure`` (docs/models.md,
"Backbones"): Kaiming-normal fan_out convs, BN weight 1 / bias 0, momentum 0.01 for the stem BN and
the projection-shortcut BNs, PyTorch's default 0.1 inside blocks.
"""
from __future__ import annotations

import torch
from torch import nn

# The release sets momentum 0.01 on the stem and projection BNs only (docs/models.md, "Backbones").
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
