"""Training and evaluation engine: the trainer (``trainer``), evaluation (``evaluate``) and its
report files (``report``), checkpoints (``state``), the learning-rate schedule (``schedule``),
DDP helpers (``distributed``), the command lines (``commands``), the demo (``demo``) and the
training-step throughput used by the benchmark (``throughput``).

The heavy modules are imported on first use, so ``import lgrn.engine`` stays cheap.
"""
from __future__ import annotations

from typing import Any

__all__ = ["Trainer", "write_reports", "train_step_throughput"]

# (``evaluate`` is both a submodule and its main function: import it from ``lgrn.engine.evaluate``.)
_LAZY = {"Trainer": ".trainer", "write_reports": ".report", "train_step_throughput": ".throughput"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'lgrn.engine' has no attribute {name!r}")
