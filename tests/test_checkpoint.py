"""Checkpoint I/O: atomic saves survive a crash mid-write, loads are weights-only with clear errors,
and load_model rebuilds models strictly from lgrn checkpoints."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lgrn import atomic as atomic_module

import lgrn.checkpoint as checkpoint_module
from lgrn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lgrn.config import load_config
from lgrn.models import build_model, load_model
from lgrn.models import loading as loading_module

REPO = Path(__file__).resolve().parents[1]


def _lgrn_checkpoint(model, config: dict) -> dict:
    return {"epoch": 3, "optimizer": None, "state_dict": model.state_dict(), "config": config,
            "scheme": model.scheme.to_dict(), "scheduler": None, "rng": None, "lgrn_version": "0.1.0",
            "best_nme": 0.05}


def _small_model(*overrides: str):
    config = load_config(REPO / "experiments/COFW/config_resnet.yaml",
                         overrides=["structure.crop_size=64", "structure.backbone_name=resnet18", *overrides])
    return build_model(config).eval(), config


def test_roundtrip(tmp_path: Path) -> None:
    obj = {"epoch": 7, "state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "rng": {"seed": 1, "state": [1, 2]},
           "config": {"a": [1, 2.5, "x", None]}}
    path = tmp_path / "deep" / "ckpt.pth"
    save_checkpoint(path, obj)
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 7 and loaded["rng"] == obj["rng"] and loaded["config"] == obj["config"]
    assert torch.equal(loaded["state_dict"]["w"], obj["state_dict"]["w"])
    assert sorted(os.listdir(path.parent)) == ["ckpt.pth"]  # no temporary file left behind


def test_failed_save_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "checkpoint.pth.tar"
    save_checkpoint(path, {"epoch": 1})
    real_save = torch.save

    def crash_mid_write(obj, handle, *args, **kwargs):
        real_save(obj, handle, *args, **kwargs)
        handle.truncate(10)  # a partial file on disk, then the "crash"
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_mid_write)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2, "big": torch.zeros(1000)})
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(path) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["checkpoint.pth.tar"]

    monkeypatch.setattr(atomic_module.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("I/O error")))
    with pytest.raises(OSError, match="I/O error"):
        save_checkpoint(path, {"epoch": 3})
    monkeypatch.undo()
    assert load_checkpoint(path) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["checkpoint.pth.tar"]


def test_process_killed_mid_save_keeps_previous_file(tmp_path: Path) -> None:
    # A hard crash (no exception handling runs): the process dies after writing half of the data.
    path = tmp_path / "checkpoint.pth.tar"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})
    script = f"""
import os, torch
from lgrn.checkpoint import save_checkpoint
real_save = torch.save
def dying_save(obj, handle, *a, **k):
    real_save(obj, handle, *a, **k)
    handle.flush()
    handle.truncate(handle.tell() // 2)
    os._exit(9)
torch.save = dying_save
save_checkpoint({str(path)!r}, {{"epoch": 2, "w": torch.zeros(100000)}})
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 9, result.stderr
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 1 and torch.equal(loaded["w"], torch.ones(3))
    leftovers = [name for name in os.listdir(tmp_path) if name != path.name]
    assert len(leftovers) == 1 and leftovers[0].startswith(".checkpoint.pth.tar.")  # a hidden temp only


class _Payload:
    """Unpickling this would create a marker file: a weights-only load must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*missing.pth"):
        load_checkpoint(tmp_path / "missing.pth")
    text = tmp_path / "notes.txt"
    text.write_text("this is not a checkpoint\n")
    with pytest.raises(CheckpointError, match="notes.txt: not a PyTorch checkpoint"):
        load_checkpoint(text)
    marker = tmp_path / "pwned"
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"state_dict": {}, "payload": _Payload(marker)}, unsafe)
    with pytest.raises(CheckpointError, match="unsafe.pth: refused by the safe \\(weights_only\\) loader"):
        load_checkpoint(unsafe)
    assert not marker.exists()
    tensor_only = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(CheckpointError, match="expected a checkpoint dict, found a Tensor"):
        load_checkpoint(tensor_only)


def test_load_model_from_lgrn_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    scheme_file = tmp_path / "five.yaml"
    scheme_file.write_text("name: five\nnum_landmarks: 5\ninter_ocular: [0, 1]\n"
                           "graph: [[0, 1], [1, 2], [2, 3], [3, 4]]\n")
    model, config = _small_model("common.num_kpts=5", f"structure.scheme={scheme_file}")
    path = tmp_path / "model.pth"
    save_checkpoint(path, _lgrn_checkpoint(model, config))
    scheme_file.unlink()  # the checkpoint carries the scheme: the file is no longer needed
    images = torch.randn(2, 3, 64, 64)
    loaded = checkpoint_module.load_model(path)
    assert not loaded.training and loaded.num_landmarks == 5 and loaded.scheme.name == "five"
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
    # A DataParallel-style prefix is accepted.
    ckpt = _lgrn_checkpoint(model, config)
    ckpt["state_dict"] = {f"module.{k}": v for k, v in ckpt["state_dict"].items()}
    save_checkpoint(path, ckpt)
    with torch.no_grad():
        assert torch.equal(load_model(path)(images), model(images))


def test_load_model_strict_errors(tmp_path: Path) -> None:
    model, config = _small_model()
    path = tmp_path / "model.pth"
    ckpt = _lgrn_checkpoint(model, config)
    ckpt["state_dict"]["head.extra.weight"] = torch.zeros(1)
    del ckpt["state_dict"]["backbone.layer1.0.conv1.weight"]
    save_checkpoint(path, ckpt)
    with pytest.raises(ValueError, match=r"missing keys: \['backbone\.layer1\.0\.conv1\.weight'\]") as info:
        load_model(path)
    assert "unexpected keys: ['head.extra.weight']" in str(info.value) and "model.pth" in str(info.value)
    # Weights of the static head into a dynamic config: the relation learner is listed as missing.
    save_checkpoint(path, _lgrn_checkpoint(model, config))
    dynamic = dict(config, structure=dict(config["structure"],
                                          gcn_param=dict(config["structure"]["gcn_param"], edge_weights="dynamic")))
    with pytest.raises(ValueError, match=r"head\.relation\.fc1\.weight"):
        load_model(path, config=dynamic)
    ckpt = _lgrn_checkpoint(model, config)
    del ckpt["config"]
    save_checkpoint(path, ckpt)
    with pytest.raises(ValueError, match="not an lgrn checkpoint"):
        load_model(path)


def test_a_flipped_byte_inside_a_tensor_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pth.tar"
    save_checkpoint(path, {"epoch": 1, "state_dict": {"w": torch.arange(4096, dtype=torch.float32)}})
    data = bytearray(path.read_bytes())
    marker = torch.arange(4096, dtype=torch.float32).numpy().tobytes()[4000:4016]
    at = bytes(data).index(marker)                   # inside the stored tensor's bytes
    data[at] ^= 0x01
    damaged = tmp_path / "damaged.pth.tar"
    damaged.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged checkpoint: the checksum \\(CRC-32\\) of .*data/0 does not match"):
        load_checkpoint(damaged)
    assert load_checkpoint(path)["epoch"] == 1


def test_reading_lives_in_models_loading_and_stays_importable_from_lgrn_checkpoint() -> None:
    # One reader (lgrn.models.loading); lgrn.checkpoint keeps the names its callers import.
    assert checkpoint_module.load_checkpoint is loading_module.load_checkpoint
    assert checkpoint_module.CheckpointError is loading_module.CheckpointError
    assert checkpoint_module.load_model is loading_module.load_model is load_model
    assert issubclass(CheckpointError, ValueError)
