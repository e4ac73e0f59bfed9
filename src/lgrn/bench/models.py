"""The models ``lgrn bench`` measures and how it builds them: the shipped configurations (WFLW L-GRN
and its FC baseline, 300W and COFW L-GRN, all ResNet-34 at 256 px; docs/models.md) plus the light
MobileNetV2 L-GRN, as resolved configs with random weights (speed does not depend on the weights).

The experiment YAML files in the repository's ``experiments/`` folder are the one definition of these
models: :func:`model_config` reads a file's ``structure`` section (the light model is the WFLW L-GRN
file with the MobileNetV2 backbone) and sets the crop size, so the benchmark cannot drift from the
shipped configs. A user's own YAML file is benchmarked with ``lgrn bench --config PATH``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import load_config, resolve_config
from ..models import build_model

__all__ = ["BenchModel", "BENCH_MODELS", "DEFAULT_MODELS", "QUICK_MODELS", "EXPERIMENTS", "shipped_config",
           "model_config", "file_model", "build_bench_model", "random_images"]

# The repository's experiment configs (src/lgrn/bench/models.py -> repository root / experiments).
EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"


@dataclass(frozen=True)
class BenchModel:
    """One benchmark model: the shipped experiment file it comes from (relative to ``experiments/``),
    a one-line description, and changes to that file's ``structure`` section (none for a shipped
    model)."""

    file: str
    description: str
    structure_changes: dict = field(default_factory=dict)

    @property
    def shipped(self) -> bool:
        """True when the model is the file's own model (no structure changes)."""
        return not self.structure_changes


BENCH_MODELS: dict[str, BenchModel] = {
    "wflw-lgrn": BenchModel("WLFW/config_resnet.yaml",
                            "L-GRN, ResNet-34, 98 landmarks, 256 px (the release's WFLW model)"),
    "wflw-fc": BenchModel("WLFW/config_resnet_fc.yaml", "FC baseline, ResNet-34, 98 landmarks, 256 px"),
    "300w-lgrn": BenchModel("300W/config_resnet.yaml", "L-GRN, ResNet-34, 68 landmarks, 256 px"),
    "cofw-lgrn": BenchModel("COFW/config_resnet.yaml", "L-GRN, ResNet-34, 29 landmarks, 256 px"),
    "light-lgrn": BenchModel("WLFW/config_resnet.yaml",
                             "L-GRN, MobileNetV2 (light CPU backbone), 98 landmarks, 256 px",
                             {"backbone_name": "mobilenetv2"}),
}
DEFAULT_MODELS = ("wflw-lgrn", "wflw-fc", "300w-lgrn", "cofw-lgrn", "light-lgrn")
QUICK_MODELS = ("wflw-lgrn", "light-lgrn")


def shipped_config(file: str) -> dict:
    """The resolved config of a shipped experiment file (``file`` relative to ``experiments/``)."""
    path = EXPERIMENTS / file
    if not path.is_file():
        raise FileNotFoundError(f"lgrn bench reads its models from the repository's experiment configs, and "
                                f"{path} is not there (run it from a repository checkout, or benchmark a config "
                                "file with --config PATH)")
    return load_config(path)


def model_config(name: str, crop_size: int = 256, train_param: dict | None = None) -> dict:
    """Resolved config of a benchmark model (``BENCH_MODELS`` key), at ``crop_size``, with extra
    ``train_param`` keys (e.g. amp / channels_last for the fast path)."""
    if name not in BENCH_MODELS:
        raise ValueError(f"unknown benchmark model {name!r}; expected one of {', '.join(BENCH_MODELS)} "
                         "(or benchmark a config file with --config PATH)")
    model = BENCH_MODELS[name]
    structure = {**copy.deepcopy(shipped_config(model.file)["structure"]), **model.structure_changes,
                 "crop_size": int(crop_size)}
    common = {key: structure[key] for key in ("num_kpts", "is_color", "crop_size")}
    raw = {"structure": structure,
           "train_param": {**common, **(train_param or {}), "device": "cpu"},
           "test_param": dict(common)}
    return resolve_config(raw, source=f"<bench model {name}>")


def file_model(path: str | Path) -> tuple[str, dict]:
    """(display name, resolved config) of a user's YAML config."""
    path = Path(path)
    return path.stem, load_config(path)


def build_bench_model(config: dict, device: torch.device, seed: int = 0) -> torch.nn.Module:
    """A model with seeded random weights, in eval mode, on ``device`` (no pretrained weights read)."""
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
