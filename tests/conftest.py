"""Shared test fixtures: paths to the real samples in ../shared/data (or $LGRN_SHARED_DATA) and torch
threading."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LGRN_SHARED_DATA") or REPO.parent / "shared" / "data")

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real WFLW and 300W samples in their official formats)."""
    if not SHARED_DATA.is_dir():
        raise FileNotFoundError(f"{SHARED_DATA} is missing: the repository must sit beside shared/, or set "
                                "LGRN_SHARED_DATA to the folder holding the real WFLW/300W samples")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
