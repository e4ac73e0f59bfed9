"""`lgrn convert-checkpoint`: convert an authors' checkpoint to lgrn's layout."""
from __future__ import annotations

from lgrn.models.convert import main  # TODO(move the parser here)

__all__ = ["main"]
