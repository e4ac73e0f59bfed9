"""The models ``lgrn bench`` measures and how it builds them: the shipped configurations (WFLW L-GRN
and its FC baseline, 300W and COFW L-GRN, all ResNet-34 at 256 px) plus the light MobileNetV2 L-GRN,
as resolved configs with random weights (speed does not depend on the weights).

The ``structure`` sections below equal those of the shipped YAML files in ``experiments/`` (a test
checks it), so the benchmark runs from an installed package without the repository's files; a
user's own YAML file is benchmarked with ``lgrn bench --config PATH``.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from .config import load_config, resolve_config

# name -> (raw structure section, shipped file it mirrors or None, one-line description)
MODEL_SPECS: dict[str, tuple[dict, str | None, str]] = {
    "wflw-lgrn": ({"num_kpts": 98, "backbone_name": "ResNet34Pure", "predictor_name": "BaseGCNPredictor",
                   "gcn_param": {"top_k": 3}}, "experiments/WLFW/config_resnet.yaml",
                  "L-GRN, ResNet-34, 98 landmarks, 256 px (the release's WFLW model)"),
    "wflw-fc": ({"num_kpts": 98, "backbone_name": "ResNet34Pure", "predictor_name": "FCPredictor"},
                "experiments/WLFW/config_resnet_fc.yaml", "FC baseline, ResNet-34, 98 landmarks, 256 px"),
    "300w-lgrn": ({"num_kpts": 68, "backbone_name": "ResNet34Pure", "predictor_name": "BaseGCNPredictor",
                   "gcn_param": {"top_k": 3}}, "experiments/300W/config_resnet.yaml",
                  "L-GRN, ResNet-34, 68 landmarks, 256 px"),
    "cofw-lgrn": ({"num_kpts": 29, "backbone_name": "ResNet34Pure", "predictor_name": "BaseGCNPredictor",
                   "gcn_param": {"top_k": 3}}, "experiments/COFW/config_resnet.yaml",
                  "L-GRN, ResNet-34, 29 landmarks, 256 px"),
    "light-lgrn": ({"num_kpts": 98, "backbone_name": "mobilenetv2", "predictor_name": "BaseGCNPredictor",
                    "gcn_param": {"top_k": 3}}, None, "L-GRN, MobileNetV2 (light CPU backbone), 98 landmarks, 256 px"),
}
DEFAULT_MODELS = ("wflw-lgrn", "wflw-fc", "300w-lgrn", "cofw-lgrn", "light-lgrn")
QUICK_MODELS = ("wflw-lgrn", "light-lgrn")


def model_config(name: str, crop_size: int = 256, train_param: dict | None = None) -> dict:
    """Resolved config of a benchmark model (``MODEL_SPECS`` key), at ``crop_size``, with extra
    ``train_param`` keys (e.g. amp / channels_last for the fast path)."""
    if name not in MODEL_SPECS:
        raise ValueError(f"unknown benchmark model {name!r}; expected one of {', '.join(MODEL_SPECS)} "
                         "(or benchmark a config file with --config PATH)")
    structure = copy.deepcopy(MODEL_SPECS[name][0])
    common = {"num_kpts": structure.pop("num_kpts"), "is_color": True, "crop_size": int(crop_size)}
    raw = {"structure": {**structure, **common},
           "train_param": {**common, **(train_param or {}), "device": "cpu"},
           "test_param": dict(common)}
    return resolve_config(raw, source=f"<bench model {name}>")


def file_model(path: str | Path) -> tuple[str, dict]:
    """(display name, resolved config) of a user's YAML config."""
    path = Path(path)
    return path.stem, load_config(path)


def build_bench_model(config: dict, device: torch.device, seed: int = 0) -> torch.nn.Module:
    """A model with seeded random weights, in eval mode, on ``device`` (no pretrained weights read)."""
    from .models import build_model

    torch.manual_seed(seed)
    return build_model(config, pretrained=False).to(device).eval()


def random_images(batch: int, config: dict, device: torch.device, seed: int = 0) -> torch.Tensor:
    """A float32 ``[B, C, S, S]`` batch of z-scored noise (what normalised crops look like to the
    network, as far as speed is concerned)."""
    structure = config["structure"]
    channels = 3 if structure["is_color"] else 1
    generator = torch.Generator().manual_seed(seed)
    size = structure["crop_size"]
    return torch.randn(batch, channels, size, size, generator=generator).to(device)
