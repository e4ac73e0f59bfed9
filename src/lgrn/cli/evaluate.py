"""`lgrn evaluate`: evaluate a checkpoint or ONNX model and write reports."""
from __future__ import annotations

from lgrn.engine.commands import evaluate_main as main  # TODO(move the parser here)

__all__ = ["main"]
