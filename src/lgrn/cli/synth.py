"""`lgrn synth`: write a synthetic face dataset in the processed format."""
from __future__ import annotations

from lgrn.data.synthetic import main  # TODO(move the parser here)

__all__ = ["main"]
