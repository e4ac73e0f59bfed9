"""`lgrn train`: train a model (release options plus --set key=value)."""
from __future__ import annotations

from lgrn.engine.commands import train_main as main  # TODO(move the parser here)

__all__ = ["main"]
