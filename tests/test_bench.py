"""`lgrn bench`: a tiny end-to-end run (64 px light model, one or two calls per row) whose JSON
records must follow the schema with positive, self-consistent numbers; the timer and memory probe
against known work; the derived summary lines and the table against hand-built records; the
benchmark models and the release augmentation read from the shipped configs; the CLI's help and its
CUDA check."""
from __future__ import annotations

import json
import time

import pytest
import torch
import yaml

from lgrn import bench
from lgrn.bench.data import release_augmentation
from lgrn.bench.memory import PeakMemory
from lgrn.bench.models import BENCH_MODELS, EXPERIMENTS, model_config
from lgrn.bench.records import BenchRecord, make_record
from lgrn.bench.timing import Timing, time_calls
from lgrn.cli.bench import main as bench_main

KEYS = {"kind", "model", "variant", "batch", "images_per_s", "ms_per_batch", "peak_mem_mb"}


def test_tiny_benchmark_writes_schema_records(tmp_path, capsys):
    # ONNX backends are left out: the export alone takes ~30 s (run `lgrn bench --quick` for them).
    backends = "eager_fp32,channels_last,bf16"
    out = tmp_path / "bench.json"
    # One thread: on a shared, loaded machine two OpenMP threads wait on each other at every op.
    code = bench_main(["--quick", "--threads", "1", "--models", "light-lgrn", "--crop-size", "64", "--backends", backends,
                       "--batches", "1,2", "--train-model", "light-lgrn", "--train-batch", "2",
                       "--train-steps", "1", "--json", str(out)])
    assert code == 0
    records = json.loads(out.read_text())
    assert isinstance(records, list) and records
    for r in records:
        assert set(r) == KEYS, r
        assert r["kind"] in ("inference", "train", "data")
        assert isinstance(r["batch"], int) and r["batch"] >= 1
        assert r["images_per_s"] > 0 and r["ms_per_batch"] > 0 and r["peak_mem_mb"] >= 0
        # images/s and ms/batch describe the same measurement
        assert r["images_per_s"] == pytest.approx(r["batch"] * 1000 / r["ms_per_batch"], rel=1e-6)
    rows = {(r["kind"], r["variant"], r["batch"]) for r in records}
    for backend in backends.split(","):
        assert ("inference", backend, 1) in rows and ("inference", backend, 2) in rows
    assert {("inference", "backbone", 8), ("inference", "head", 8), ("inference", "head.graph", 8)} <= rows
    assert {("train", "fp32", 2), ("train", "fast", 2)} <= rows
    data_variants = {v for k, v, _ in rows if k == "data"}
    assert {"decode", "decode+augment/nearest", "decode+augment/bilinear", "cache+augment/nearest",
            "cache+augment/bilinear", "gpu_augment/nearest@cpu", "gpu_augment/bilinear@cpu"} <= data_variants
    printed = capsys.readouterr().out
    assert "images/s" in printed and "% of the backbone" in printed and "training fast path" in printed
    # the CPU capability and the precision amp: auto chose on it
    capability = torch.backends.cpu.get_cpu_capability()
    chosen = "bf16" if "BF16" in capability.upper() or "AMX" in capability.upper() else "fp32"
    assert f"capability {capability}, fast-path precision (amp: auto) {chosen}" in printed


def test_time_calls_measures_known_work():
    timing = time_calls(lambda: time.sleep(0.02), device=torch.device("cpu"), warmup=1, min_calls=4, min_seconds=0.0)
    assert timing.calls == 4
    assert 19.0 <= timing.min_ms <= timing.median_ms <= timing.max_ms
    assert timing.median_ms < 500  # generous: a loaded machine delays, never shortens, a sleep


def test_peak_memory_sees_a_freed_allocation_and_not_the_previous_block():
    with PeakMemory(torch.device("cpu")) as first:
        block = torch.ones(50 * 2**20 // 4)  # 50 MB, then freed inside the block
        del block
    with PeakMemory(torch.device("cpu")) as second:
        small = torch.ones(2**20 // 4)      # 1 MB
        del small
    assert 45 <= first.peak_mb < 200
    assert second.peak_mb < 20      # the freed 50 MB of the first block are not counted again


def test_records_summary_and_table():
    rec = [BenchRecord("inference", "m", "backbone", 32, 32 / 0.4, 400.0, 100.0),
           BenchRecord("inference", "m", "head", 32, 32 / 0.01, 10.0, 1.0),
           BenchRecord("train", "m", "fp32", 16, 2.0, 8000.0, 900.0),
           BenchRecord("train", "m", "fast", 16, 5.0, 3200.0, 500.0)]
    lines = bench.summary_lines(rec)
    assert "m: head 10.0 ms = 2.50 % of the backbone's 400.0 ms (batch 32)" in lines
    assert any("2.50x the fp32 path" in line for line in lines)
    table = bench.format_table(rec).splitlines()
    assert table[0].split()[:4] == ["kind", "model", "variant", "batch"]
    assert len(table) == 2 + len(rec)
    record = make_record("data", "p", "decode", 16, Timing(20.0, 19.0, 25.0, 5), 3.04)
    assert record.images_per_s == pytest.approx(800.0) and record.peak_mem_mb == 3.0
    assert set(record.to_json()) == KEYS
    with pytest.raises(ValueError, match="kind"):
        BenchRecord("speed", "m", "v", 1, 1.0, 1.0, 0.0)


def test_benchmark_models_match_the_shipped_configs(repo_root):
    assert EXPERIMENTS == repo_root / "experiments"
    for name, spec in BENCH_MODELS.items():
        config = model_config(name)
        if not spec.shipped:
            continue
        shipped = yaml.safe_load((EXPERIMENTS / spec.file).read_text())["structure"]
        for key in ("backbone_name", "predictor_name", "num_kpts", "crop_size"):
            assert config["structure"][key] == shipped[key], (name, key)
        assert config["structure"]["gcn_param"]["top_k"] == (shipped.get("gcn_param") or {}).get("top_k"), name
    with pytest.raises(ValueError, match="unknown benchmark model"):
        model_config("nope")


def test_light_model_is_the_wflw_file_with_the_mobilenet_backbone():
    wflw, light = model_config("wflw-lgrn", 64), model_config("light-lgrn", 64)
    assert light["structure"] == {**wflw["structure"], "backbone_name": "mobilenetv2"}
    assert light["structure"]["crop_size"] == light["train_param"]["crop_size"] == light["test_param"]["crop_size"] == 64
    assert model_config("wflw-fc", train_param={"amp": "auto"})["train_param"]["amp"] == "auto"


def test_data_pipeline_uses_the_release_augmentation():
    # the values of experiments/WLFW/config_resnet.yaml (docs/augmentation.md), read from the file
    assert release_augmentation() == {"rotation": 40, "translate_rate": 0.1, "scale_min": 0.9314,
                                      "scale_max": 1.0686, "mirror": True, "is_occluded": True}


def test_cli_help_and_cuda_without_gpu(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lgrn bench") and "--scale-variant" in out and "inference,head,train,data" in out
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="--device cuda but torch.cuda.is_available"):
            bench_main(["--device", "cuda"])
