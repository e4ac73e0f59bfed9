"""Checkpoint files: atomic saving (a crash mid-write never leaves a truncated file in place of the
previous one) and safe loading (``torch.load(weights_only=True)`` only, with errors that say whether
the file is missing, is not a PyTorch checkpoint, or holds objects a weights-only load refuses).

An lgrn checkpoint is a dict with keys ``epoch, optimizer, state_dict`` (as released) plus ``config,
scheme, scheduler, rng, lgrn_version, best_nme``, holding plain Python types and tensors only; the
engine writes it, ``lgrn.models.load_model`` rebuilds the model from it.
"""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_write


class CheckpointError(ValueError):
    """A checkpoint file cannot be read safely; the message names the file and the reason."""


def save_checkpoint(path: str | Path, obj: Any) -> None:
    """``torch.save(obj, path)`` atomically (``lgrn.atomic``: temporary file, fsync, rename; permissions
    from the umask). On any failure the temporary file is removed and a previous ``path`` is left untouched."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


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
    a PyTorch checkpoint, holds objects beyond tensors and plain containers (an unsafe pickle, which
    is never executed), or does not hold a dict.
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


def load_model(path: str | Path, config: str | Path | dict | None = None, map_location: Any = "cpu"):
    """Same as :func:`lgrn.models.load_model` (the model in eval mode from an lgrn or authors' checkpoint)."""
    from .models.model import load_model as _load_model

    return _load_model(path, config=config, map_location=map_location)
