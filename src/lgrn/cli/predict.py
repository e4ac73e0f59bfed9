"""`lgrn predict`: landmarks for an image, a folder or a video."""
from __future__ import annotations

from lgrn.predict import main  # TODO(move the parser here)

__all__ = ["main"]
