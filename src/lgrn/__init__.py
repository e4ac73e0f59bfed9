"""lgrn: robust face alignment with landmark-graph relational networks.

Implements L-GRN from "Structure-Coherent Deep Feature Learning for Robust Face Alignment"
(Lin, Zhu, Wang, Liao, Qian, Lu, Zhou, IEEE TIP 2021) with a faithful mode that matches the
authors' release and documented, switchable improvements.
"""
from __future__ import annotations

from ._version import __version__  # noqa: F401

from .config import load_config  # noqa: E402

__all__ = ["__version__", "load_config", "build_model", "load_model", "FaceAligner"]


def __getattr__(name: str):
    # Heavy imports (torch, cv2) happen on first use, so `import lgrn` stays cheap.
    if name == "build_model":
        from .models import build_model
        return build_model
    if name == "load_model":
        from .models import load_model
        return load_model
    if name == "FaceAligner":
        from .inference import FaceAligner
        return FaceAligner
    raise AttributeError(f"module 'lgrn' has no attribute {name!r}")
