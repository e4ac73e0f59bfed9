"""`lgrn graph`: derive a top-k landmark graph from annotations."""
from __future__ import annotations

from lgrn.landmarks.cli import graph_main as main  # TODO(move the parser here)

__all__ = ["main"]
