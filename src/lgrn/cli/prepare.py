"""`lgrn prepare`: official WFLW / 300W / COFW releases -> processed crops + lists."""
from __future__ import annotations

from lgrn.data.prepare import main  # TODO(move the parser here)

__all__ = ["main"]
