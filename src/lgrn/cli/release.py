"""`lgrn main`: the release's main.py command line."""
from __future__ import annotations

from lgrn.engine.commands import release_main as main  # TODO(move the parser here)

__all__ = ["main"]
