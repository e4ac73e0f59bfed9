"""`lgrn demo`: train L-GRN and the FC baseline on synthetic faces and compare."""
from __future__ import annotations

from lgrn.engine.demo import main  # TODO(move the parser here)

__all__ = ["main"]
