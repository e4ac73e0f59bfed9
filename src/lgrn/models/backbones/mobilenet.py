"""MobileNetV2 backbone for CPU use: inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1
linear projection), stride-32 output, returning four stage feature maps like the ResNets.

Its module layout gives state-dict keys identical to torchvision's ``mobilenet_v2`` ``features.*``
(the ``classifier.*`` is not built), so a local torchvision ImageNet file loads through
``structure.pretrained_path``. At 256x256 it costs about 0.4 GMAC against 4.7 GMAC for ResNet-34
(the test suite measures both with :func:`lgrn.models.flops.count_macs`).
"""
from __future__ import annotations

import torch
from torch import nn

# (expansion t, output channels c, repeats n, first stride s): the MobileNetV2 paper's table.
INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
LAST_CHANNELS = 1280


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` without dropping more than 10 %."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvBNReLU6(nn.Sequential):
    """Conv (no bias) + BN + ReLU6; keys ``0.weight`` and ``1.*`` as in torchvision."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2,
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """Expand (1x1, skipped when t = 1), depthwise 3x3 with the stride, linear 1x1 projection;
    identity shortcut when the shape is unchanged."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBNReLU6(in_channels, hidden, kernel_size=1))
        layers += [ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, out_channels, 1, bias=False),
                   nn.BatchNorm2d(out_channels)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """``forward(images [B, C, H, W]) -> [out1, out2, out3, out4]`` at strides 4, 8, 16, 32 with
    ``out_channels`` = (24, 32, 96, 1280) for ``width_mult`` 1."""

    stride = 32

    def __init__(self, in_channels: int = 3, width_mult: float = 1.0) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"structure.width_mult must be positive, got {width_mult}")
        self.in_channels = in_channels
        channels = make_divisible(32 * width_mult)
        last = make_divisible(LAST_CHANNELS * max(1.0, width_mult))
        features: list[nn.Module] = [ConvBNReLU6(in_channels, channels, stride=2)]
        # Index of the last block of each stage ending at strides 4, 8, 16 (then the final 1x1 conv).
        stage_ends: list[int] = []
        current_stride = 2
        for expansion, width, repeats, stride in INVERTED_RESIDUAL_SETTING:
            if stride == 2 and current_stride in (4, 8, 16):
                stage_ends.append(len(features) - 1)
            current_stride *= stride
            out_channels = make_divisible(width * width_mult)
            for i in range(repeats):
                features.append(InvertedResidual(channels, out_channels, stride if i == 0 else 1, expansion))
                channels = out_channels
        features.append(ConvBNReLU6(channels, last, kernel_size=1))
        stage_ends.append(len(features) - 1)
        self.features = nn.Sequential(*features)
        self.stage_ends = tuple(stage_ends)
        self.out_channels = tuple(self._channels_after(i) for i in self.stage_ends)
        self._init_weights()

    def _channels_after(self, index: int) -> int:
        convs = [m for m in self.features[index].modules() if isinstance(m, nn.Conv2d)]
        return convs[-1].out_channels

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        x = images
        start = 0
        for end in self.stage_ends:
            for index in range(start, end + 1):
                x = self.features[index](x)
            outputs.append(x)
            start = end + 1
        return outputs
