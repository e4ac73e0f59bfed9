"""Training-state files: :func:`save_checkpoint` writes atomically (a crash mid-write never leaves a
truncated file in place of the previous one); reading is :mod:`lgrn.models.loading`, re-exported here
(:func:`load_checkpoint`: ``torch.load(weights_only=True)`` only, after a CRC-32 check, with errors that
say whether the file is missing, is damaged, is not a PyTorch checkpoint, or holds objects a
weights-only load refuses; :class:`CheckpointError`; :func:`load_model`). See docs/models.md, "Checkpoints".

An lgrn checkpoint is a dict with keys ``epoch, optimizer, state_dict`` (as released) plus ``config,
scheme, scheduler, rng, lgrn_version, best_nme``, holding plain Python types and tensors only; the
engine writes it, ``lgrn.models.load_model`` rebuilds the model from it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_write
from .models.loading import CheckpointError, load_checkpoint, load_model

__all__ = ["CheckpointError", "load_checkpoint", "load_model", "save_checkpoint"]


def save_checkpoint(path: str | Path, obj: Any) -> None:
    """``torch.save(obj, path)`` atomically (``lgrn.atomic``: temporary file, fsync, rename; permissions
    from the umask). On any failure the temporary file is removed and a previous ``path`` is left untouched."""
    atomic_write(path, lambda handle: torch.save(obj, handle))
