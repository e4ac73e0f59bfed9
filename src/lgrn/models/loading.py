"""Model files in: every checkpoint read goes through here (docs/models.md, "Checkpoints").

- :func:`load_checkpoint`: a checkpoint dict read with ``torch.load(weights_only=True)`` only, after a
  CRC-32 check of the archive, with :class:`CheckpointError` naming the file and the reason;
- :func:`load_model` / :func:`model_from_checkpoint`: the model in eval mode from an lgrn checkpoint
  (its stored config and scheme) or from an authors' checkpoint (converted on the fly);
- :func:`convert_checkpoint_file`: an authors' checkpoint file -> an lgrn checkpoint dict, proven to load
  (``lgrn convert-checkpoint`` writes it with ``lgrn.checkpoint.save_checkpoint``).

The one other file a model reads, ``structure.pretrained_path`` (ImageNet weights for a fresh backbone),
is read by :mod:`lgrn.models.backbones.pretrained` inside ``build_model``. This is the only module of
``lgrn.models`` that reads configs (``lgrn.config``): ``build_model`` takes a resolved config.
"""
from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..config import load_config, resolve_config
from ..landmarks import scheme_from_dict
from .convert import (convert_release_checkpoint, convert_release_state_dict, dropped_release_keys,
                      is_release_checkpoint, release_state_dict)
from .model import LandmarkModel, build_model, load_state_dict_strict, strip_module_prefix


class CheckpointError(ValueError):
    """A checkpoint file cannot be read safely; the message names the file and the reason."""


def _check_crcs(path: Path) -> None:
    """A checkpoint is a zip archive whose members carry CRC-32 checksums that torch.load does not verify:
    a flipped byte inside a tensor would load silently. Check them all (about a second per GB)."""
    if not zipfile.is_zipfile(path):
        return                                   # the legacy (pre-1.6) format: torch.load decides
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint archive ({exc})") from None
    if bad is not None:
        raise CheckpointError(f"{path}: damaged checkpoint: the checksum (CRC-32) of {bad} does not match its data")


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict:
    """Load a checkpoint dict with ``weights_only=True``.

    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointError` when the file is not
    a PyTorch checkpoint, fails its CRC-32 check, holds objects beyond tensors and plain containers (an
    unsafe pickle, which is never executed), or does not hold a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    _check_crcs(path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        message = str(exc)
        if "weights_only" in message or "Weights only load failed" in message:
            first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
            raise CheckpointError(
                f"{path}: refused by the safe (weights_only) loader: it holds Python objects beyond tensors and "
                f"plain containers, which could run code when unpickled. Only load files you trust; re-save "
                f"them as plain state dicts. ({first})") from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({type(exc).__name__}: {message[:200]})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, found a {type(obj).__name__}")
    return obj


def load_model(path: str | Path, config: str | Path | dict | None = None,
               map_location: Any = "cpu") -> LandmarkModel:
    """A model in eval mode from an lgrn checkpoint (its stored config and scheme; ``config``, when
    given, replaces the stored config) or from an authors' checkpoint (``config`` required: a YAML
    path or a config dict; the weights are converted with ``convert_release_state_dict``)."""
    return model_from_checkpoint(load_checkpoint(path, map_location=map_location), config, str(path))


def model_from_checkpoint(checkpoint: dict, config: str | Path | dict | None = None,
                          path: str = "checkpoint") -> LandmarkModel:
    """:func:`load_model` on a checkpoint dict already read with :func:`load_checkpoint` (``path``
    names it in error messages). A config dict is resolved here, so it may be a raw one."""
    if isinstance(config, (str, Path)):
        config = load_config(config)
    elif isinstance(config, dict):
        config = resolve_config(config, source="load_model(config=...)")
    if is_release_checkpoint(checkpoint):
        if config is None:
            raise ValueError(f"{path}: this is an authors' (release-layout) checkpoint; it stores no config, so "
                             "pass config= (the YAML it was trained with), or convert it once with "
                             "`lgrn convert-checkpoint IN OUT --config CFG`")
        state = convert_release_state_dict(checkpoint, config)
        model = build_model(config, pretrained=False)
    else:
        if "state_dict" not in checkpoint or "config" not in checkpoint:
            raise ValueError(f"{path}: not an lgrn checkpoint (needs 'state_dict' and 'config'; found keys "
                             f"{sorted(checkpoint)[:10]})")
        scheme = scheme_from_dict(checkpoint["scheme"]) if checkpoint.get("scheme") else None
        config = config if config is not None else resolve_config(checkpoint["config"], source=f"{path}: config")
        model = build_model(config, scheme, pretrained=False)
        state = strip_module_prefix(checkpoint["state_dict"])
    load_state_dict_strict(model, state, path)
    return model.eval()


@dataclass(frozen=True)
class ConvertedCheckpoint:
    """An authors' checkpoint converted by :func:`convert_checkpoint_file`."""

    checkpoint: dict[str, Any]   # the lgrn checkpoint (see convert_release_checkpoint)
    num_tensors: int             # tensors converted (the file's tensors minus the dropped ones)
    dropped: list[str]           # keys dropped as unused by the release, as stored in the file


def convert_checkpoint_file(path: str | Path, config: dict, lgrn_version: str = __version__) -> ConvertedCheckpoint:
    """Read an authors' checkpoint file and convert it for ``config`` (a resolved config: the one it
    was trained with). The result is loaded strictly into the model of ``config`` before it is
    returned, so a returned checkpoint always loads. ``ValueError`` (or :class:`CheckpointError`,
    ``FileNotFoundError``) when the file cannot be read, is not in the authors' layout, or does not fit
    the config."""
    checkpoint = load_checkpoint(path)
    if not is_release_checkpoint(checkpoint):
        raise ValueError(f"{path}: not in the authors' layout (no 'predictor.*' keys); lgrn checkpoints "
                         "need no conversion")
    converted = convert_release_checkpoint(checkpoint, config, lgrn_version)
    model = build_model(config, pretrained=False)
    load_state_dict_strict(model, converted["state_dict"], str(path))  # proves it loads before anyone writes it
    dropped = dropped_release_keys(checkpoint)
    return ConvertedCheckpoint(converted, len(release_state_dict(checkpoint)) - len(dropped), dropped)
