"""Models shipped inside the package: their registry, where their files are, and how a training
checkpoint becomes one (:func:`pack_checkpoint`: weights only, floats stored as fp16, config, scheme and
a model card kept, optimiser and RNG state dropped).

A shipped file is an ordinary lgrn checkpoint, so ``lgrn.load_model``, ``FaceAligner.from_checkpoint``,
``lgrn evaluate`` and ``lgrn export`` read it as they read any other (always with
``torch.load(weights_only=True)``). ``FaceAligner.from_pretrained()`` and ``lgrn predict`` / ``lgrn export``
without ``--checkpoint`` use :data:`DEFAULT_MODEL`. The models inherit the terms of their training data:
see each model card (``<name>.md`` beside the weights).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..checkpoint import load_checkpoint, save_checkpoint

__all__ = ["PRETRAINED", "DEFAULT_MODEL", "pretrained_path", "model_card_path", "available_models",
           "pack_checkpoint"]

HERE = Path(__file__).resolve().parent

# name -> weights file in this folder. The model card is the same stem with ``.md``.
PRETRAINED: dict[str, str] = {
    "300w68-mobilenetv2-lgrn": "300w68_mobilenetv2_lgrn.pth",
}
DEFAULT_MODEL = "300w68-mobilenetv2-lgrn"
FP16_MAX = float(torch.finfo(torch.float16).max)


def available_models() -> list[str]:
    """Names of the shipped models (the keys of :data:`PRETRAINED`)."""
    return sorted(PRETRAINED)


def pretrained_path(name: str | None = None) -> Path:
    """The weights file of shipped model ``name`` (default :data:`DEFAULT_MODEL`); a clear error for an
    unknown name or a package installed without its model files."""
    name = DEFAULT_MODEL if name is None else name
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}: shipped models are {', '.join(available_models())}")
    path = HERE / PRETRAINED[name]
    if not path.is_file():
        raise FileNotFoundError(f"pretrained model {name!r}: {path} is missing from this installation "
                                "(reinstall lgrn; the file is package data)")
    return path


def model_card_path(name: str | None = None) -> Path:
    """The model card (Markdown) of shipped model ``name``."""
    return pretrained_path(name).with_suffix(".md")


def _half(tensor: torch.Tensor) -> torch.Tensor:
    # Floats that fit in fp16 are stored as fp16 (half the file); anything else keeps its dtype. The model
    # casts them back to float32 when the state dict is loaded.
    if tensor.is_floating_point() and tensor.numel() and float(tensor.abs().max()) < FP16_MAX:
        return tensor.to(torch.float16)
    return tensor


def pack_checkpoint(source: str | Path, target: str | Path, half: bool = True,
                    card: dict[str, Any] | None = None) -> Path:
    """Write the model of training checkpoint ``source`` as a shipped model file ``target``: its
    ``state_dict`` (floats as fp16 when ``half``), ``config``, ``scheme``, ``epoch``, ``best_nme`` and
    ``lgrn_version``, plus ``card`` (plain data: numbers, protocol, training command) under
    ``model_card``. Optimiser, scheduler and RNG states are dropped. Written atomically."""
    checkpoint = load_checkpoint(source)
    if "state_dict" not in checkpoint or "config" not in checkpoint:
        raise ValueError(f"{source}: not an lgrn checkpoint (needs 'state_dict' and 'config')")
    state = {key: (_half(value) if half else value).clone() for key, value in checkpoint["state_dict"].items()}
    packed = {"state_dict": state, "config": checkpoint["config"], "scheme": checkpoint.get("scheme"),
              "epoch": checkpoint.get("epoch"), "best_nme": checkpoint.get("best_nme"),
              "lgrn_version": checkpoint.get("lgrn_version"), "model_card": card or {}}
    save_checkpoint(target, packed)
    return Path(target)
