"""`lgrn bench`: benchmark inference, training and data throughput."""
from __future__ import annotations

from lgrn.bench import main  # TODO(move the parser here)

__all__ = ["main"]
