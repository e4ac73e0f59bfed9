"""Multiply-accumulate (MAC) counter: forward hooks on ``Conv2d``, ``Linear`` and the graph layers
(``SemGraphConv.macs``) summed over one forward pass. Normalisation, activations, pooling and
additions are not counted, the usual convention for "FLOPs" tables (ResNet-34 at 224x224: 3.6 G).
"""
from __future__ import annotations

import torch
from torch import nn

from .graph import SemGraphConv


def conv2d_macs(module: nn.Conv2d, output: torch.Tensor) -> int:
    """MACs of one Conv2d call: every output element costs (C_in / groups) * kh * kw."""
    kh, kw = module.kernel_size
    return int(output.numel()) * (module.in_channels // module.groups) * kh * kw


def count_macs(model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 256, 256)) -> int:
    """MACs of ``model(torch.zeros(input_shape))`` (eval mode, no gradients; the model's training
    flag is restored afterwards)."""
    total = 0

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += conv2d_macs(module, output)
        elif isinstance(module, nn.Linear):
            total += int(output.numel()) * module.in_features
        elif isinstance(module, SemGraphConv):
            total += module.macs(batch=int(inputs[0].shape[0]))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear, SemGraphConv))]
    was_training = model.training
    try:
        model.eval()
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else "cpu"
        with torch.no_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total
