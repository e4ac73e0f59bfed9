"""`lgrn serve`: landmarks over HTTP (POST /v1/landmarks) with a web page to drop photos on."""
from __future__ import annotations

from lgrn.serve import main  # TODO(move the parser here)

__all__ = ["main"]
