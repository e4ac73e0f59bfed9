"""`amp: auto`: bf16 autocast only where bf16 is native (CUDA, or a CPU reporting AVX512_BF16 / AMX), fp32
elsewhere; a forced `amp: bf16` on a CPU that emulates bf16 warns once. The decision function is tested
with the capability strings torch reports, not with the clock."""
from __future__ import annotations

import logging

import pytest
import torch

from lgrn.config import ConfigError, load_config
from lgrn.engine import runtime
from lgrn.engine.runtime import autocast_context, has_native_bf16, resolve_amp


@pytest.mark.parametrize("capability", ["AVX2", "AVX512", "DEFAULT", "NO AVX", "AVX"])
def test_auto_is_fp32_without_native_bf16(capability):
    assert not has_native_bf16("cpu", capability)
    assert resolve_amp("auto", "cpu", capability) is None


@pytest.mark.parametrize("capability", ["AVX512_BF16", "AMX_BF16", "avx512_bf16"])
def test_auto_is_bf16_with_native_bf16(capability):
    assert has_native_bf16("cpu", capability)
    assert resolve_amp("auto", "cpu", capability) == "bf16"


def test_auto_is_bf16_on_cuda_and_null_stays_fp32():
    assert resolve_amp("auto", "cuda", "AVX2") == "bf16"
    assert resolve_amp(None, "cpu", "AVX512_BF16") is None
    with pytest.raises(ValueError, match="null, auto or bf16"):
        resolve_amp("fp16", "cpu")


def test_forced_bf16_on_emulating_cpu_warns_once(monkeypatch, caplog):
    monkeypatch.setattr(runtime, "_warned_emulated_bf16", False)
    with caplog.at_level(logging.WARNING, logger="lgrn"):
        assert resolve_amp("bf16", "cpu", "AVX2") == "bf16"
        assert resolve_amp("bf16", "cpu", "AVX2") == "bf16"
    warnings = [r for r in caplog.records if "emulated" in r.getMessage()]
    assert len(warnings) == 1 and "AVX2" in warnings[0].getMessage()
    caplog.clear()
    monkeypatch.setattr(runtime, "_warned_emulated_bf16", False)
    with caplog.at_level(logging.WARNING, logger="lgrn"):
        resolve_amp("bf16", "cpu", "AVX512_BF16")
    assert not caplog.records


def test_autocast_context_follows_the_machine(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_capability", lambda: "AVX2")
    x = torch.randn(4, 4)
    with autocast_context(torch.device("cpu"), "auto"):
        assert (x @ x).dtype == torch.float32
    monkeypatch.setattr(runtime, "cpu_capability", lambda: "AVX512_BF16")
    with autocast_context(torch.device("cpu"), "auto"):
        assert (x @ x).dtype == torch.bfloat16


def test_fast_path_configs_default_to_auto(repo_root):
    for name in ("synthetic/demo_lgrn.yaml", "synthetic/demo_fc.yaml", "300W/config_mobilenet.yaml",
                 "300W/config_mobilenet_fc.yaml"):
        assert load_config(repo_root / "experiments" / name)["train_param"]["amp"] == "auto", name
    with pytest.raises(ConfigError, match="'train_param.amp' must be null, auto or bf16"):
        load_config(repo_root / "experiments" / "synthetic" / "tiny.yaml", overrides=["train_param.amp=fp16"])
