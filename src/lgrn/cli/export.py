"""`lgrn export`: export a checkpoint to ONNX (optionally int8)."""
from __future__ import annotations

from lgrn.export import main  # TODO(move the parser here)

__all__ = ["main"]
