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


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for the tiny models of a module (``pytestmark = pytest.mark.usefixtures(...)``):
    they gain nothing from 2 threads, and on a shared busy machine two OpenMP threads that wait for
    each other at every op make them many times slower. Restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_lively(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights whose output really depends on the input: at initialisation the BN layers (and the
    light backbone's zero-initialised ones) make the model answer almost the same landmarks for any crop,
    which would let shape and parity tests pass vacuously. Random BN affines + running statistics from
    one random batch fix that (outputs then vary by pixels between inputs)."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.weight.data.uniform_(0.5, 1.5, generator=generator)
            module.bias.data.uniform_(-0.2, 0.2, generator=generator)
            module.momentum = None          # cumulative average: the stats of the batch below
            module.reset_running_stats()
    size = model.config["structure"]["crop_size"]
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 3, size, size, generator=generator))
    return model.eval()


SMALL_CROP = 128


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    """An lgrn checkpoint of the WFLW L-GRN config on the light backbone at 128 px, lively random weights."""
    import lgrn
    from lgrn.checkpoint import save_checkpoint
    from lgrn.models import build_model

    torch.manual_seed(0)
    config = lgrn.load_config(REPO / "experiments" / "WLFW" / "config_resnet.yaml",
                              overrides=["structure.backbone_name=mobilenetv2", f"common.crop_size={SMALL_CROP}"])
    model = make_lively(build_model(config))
    path = tmp_path_factory.mktemp("ckpt") / "small.pth"
    save_checkpoint(path, {"epoch": 0, "state_dict": model.state_dict(), "config": config,
                           "scheme": model.scheme.to_dict()})
    return path
