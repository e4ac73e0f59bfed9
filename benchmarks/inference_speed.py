"""Inference speed of lgrn models on the CPU: one face (batch 1, face crop given) and batch-32 throughput,
for PyTorch eager fp32, ONNX Runtime fp32 and ONNX Runtime static int8.

    python benchmarks/inference_speed.py                       # WFLW L-GRN (ResNet-34) + light backbone
    python benchmarks/inference_speed.py --threads 2 --json speed.json
    python benchmarks/inference_speed.py --models shipped --batches 1   # the shipped 68-point model

Random weights (speed does not depend on the values); the int8 model is calibrated on synthetic face
crops. Each timing is the median of repeated calls after warm-up (lgrn.bench.timing.time_calls). On a shared
machine each case first waits (up to --max-wait s) until other processes use less than --idle-cores
CPU cores, and is repeated (up to --attempts times) while they used more during the timing; the CPU
used by other processes is printed with every number ("other" column) so loaded results are visible.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import lgrn  # noqa: E402
from lgrn.backends import load_onnx_model, torch_network  # noqa: E402
from lgrn.export import export_onnx, quantize_int8  # noqa: E402
from lgrn.models import build_model  # noqa: E402
from lgrn.bench.timing import Timing, load_average, time_calls, wait_for_idle  # noqa: E402

MODELS = {
    "lgrn-resnet34": [],                                      # the release's WFLW L-GRN, 256 px
    "lgrn-mobilenetv2": ["structure.backbone_name=mobilenetv2"],  # the light backbone, 256 px
    "shipped": None,                                          # lgrn.pretrained.DEFAULT_MODEL, its trained weights
}
DEFAULT_MODELS = ("lgrn-resnet34", "lgrn-mobilenetv2")


def synthetic_crops(config: dict, count: int) -> np.ndarray:
    """``[N, C, S, S]`` network inputs from synthetic faces (real-looking statistics for calibration)."""
    from lgrn.config import get_scheme_for_config
    from lgrn.data.synthetic import SyntheticFaces
    from lgrn.images import crop_faces
    from lgrn.geometry import square_crop_box

    structure = config["structure"]
    faces = SyntheticFaces(count, seed=7, size=structure["crop_size"], scheme=get_scheme_for_config(config).name)
    crops = []
    for i in range(count):
        sample = faces.sample(i)
        box = square_crop_box(sample.landmarks, 1.2)[None]
        crops.append(crop_faces(sample.image, box, structure["crop_size"], structure["is_color"])[0])
    return np.concatenate(crops)


def measure(run, images: np.ndarray, min_seconds: float, idle_cores: float, max_wait: float,
            attempts: int) -> Timing:
    """Time ``run(images)`` in a quiet moment; keep the attempt least disturbed by other processes."""
    best = None
    for _ in range(attempts):
        wait_for_idle(idle_cores, timeout=max_wait)
        timing = time_calls(lambda: run(images), batch=len(images), warmup=3, min_calls=10 if len(images) == 1 else 3,
                            min_seconds=min_seconds)
        if best is None or timing.other_cores < best.other_cores:
            best = timing
        if not timing.other_cores > 2 * idle_cores:
            break
    return best


def bench_model(name: str, overrides: list[str], batches: list[int], threads: int, workdir: Path,
                variants: list[str], min_seconds: float, idle_cores: float = 0.1, max_wait: float = 300.0,
                attempts: int = 3) -> list[dict]:
    if overrides is None:
        from lgrn.models import load_model
        from lgrn.pretrained import pretrained_path

        model = load_model(pretrained_path())
        config = model.config
    else:
        config = lgrn.load_config(REPO / "experiments" / "WLFW" / "config_resnet.yaml", overrides=overrides)
        model = build_model(config).eval()
    size = config["structure"]["crop_size"]
    runners = {}
    if "eager" in variants:
        runners["pytorch eager fp32"] = torch_network(model, torch.device("cpu"))
    if "ort_fp32" in variants or "ort_int8" in variants:
        fp32_path = export_onnx(model, workdir / f"{name}.onnx", sidecar=False)
        if "ort_fp32" in variants:
            runners["onnxruntime fp32"] = load_onnx_model(fp32_path, threads=threads).run_numpy
        if "ort_int8" in variants:
            int8_path = quantize_int8(fp32_path, workdir / f"{name}.int8.onnx", synthetic_crops(config, 32),
                                      sidecar=False)
            runners["onnxruntime int8"] = load_onnx_model(int8_path, threads=threads).run_numpy
    rows = []
    rng = np.random.default_rng(0)
    for variant, run in runners.items():
        for batch in batches:
            images = rng.standard_normal((batch, 3 if config["structure"]["is_color"] else 1, size, size)).astype(np.float32)
            timing = measure(run, images, min_seconds, idle_cores, max_wait, attempts)
            rows.append({"model": name, "variant": variant, "batch": batch, "ms_per_batch": timing.median_ms,
                         "ms_per_face": timing.median_ms / batch, "faces_per_s": timing.items_per_s,
                         "p10_ms": timing.p10_ms, "p90_ms": timing.p90_ms, "calls": timing.calls,
                         "other_cores": timing.other_cores})
            print(f"{name:18s} {variant:20s} batch {batch:3d}: {timing.median_ms:8.2f} ms/batch "
                  f"({timing.median_ms / batch:6.2f} ms/face, {timing.items_per_s:7.1f} faces/s; p10 "
                  f"{timing.p10_ms:.2f} p90 {timing.p90_ms:.2f}; other {timing.other_cores:.2f} cores)", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help=f"comma-separated from {list(MODELS)}")
    parser.add_argument("--variants", default="eager,ort_fp32,ort_int8")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="time each case at least this long")
    parser.add_argument("--idle-cores", type=float, default=0.1,
                        help="wait until other processes use less than this many cores before each case")
    parser.add_argument("--max-wait", type=float, default=300.0, help="longest wait for a quiet moment (s)")
    parser.add_argument("--attempts", type=int, default=3, help="re-time a case disturbed by other processes")
    parser.add_argument("--json", help="write the rows (and the conditions) to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    variants = args.variants.split(",")
    load_before = load_average()
    print(f"load average before: {load_before:.2f}; {args.threads} threads; torch {torch.__version__}; "
          f"{platform.processor() or platform.machine()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            rows += bench_model(name, MODELS[name], batches, args.threads, Path(tmp), variants, args.min_seconds,
                                args.idle_cores, args.max_wait, args.attempts)
    load_after = load_average()
    print(f"load average after: {load_after:.2f}")
    if args.json:
        import onnxruntime

        Path(args.json).write_text(json.dumps({
            "threads": args.threads, "load_before": load_before, "load_after": load_after,
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
