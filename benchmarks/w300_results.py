"""Accuracy of 68-point models on the 300-W common test set (554 faces: HELEN test 330 + LFPW test 224), the
numbers of the README's results table.

    python benchmarks/w300_results.py                                   # the shipped model
    python benchmarks/w300_results.py --model lgrn=runs/A/checkpoint_best.pth.tar \\
        --model fc=runs/B/checkpoint_best.pth.tar --detector --int8 --json results.json

For each model:
- ground-truth crops (the papers' protocol): the prepared test list of the model's config
  (``test_param.val_root`` / ``val_source``, i.e. ``lgrn prepare 300w ... --size <crop_size>``): NME
  inter-ocular (outer eye corners) and inter-pupil (eye centres), FR@0.1 and AUC@0.1 (inter-ocular; AUC on
  the release's 20-point grid and the exact integral), for all 554 faces and the HELEN / LFPW halves;
- ``--detector``: the same faces found by lgrn's default face detector in the 300-W images under
  ``--raw-root`` (each image holds one annotated face, 2x its landmark box), cropped by the detector's box
  calibration exactly as ``lgrn predict`` does (``lgrn.engine.detector_eval``): missed faces are counted
  as failures (NME 1.0 in FR and AUC) and left out of the NME, and the miss count is printed;
- ``--int8``: the model exported to ONNX (fp32) and quantised to static int8, calibrated on 64 training
  crops (never test faces), both evaluated on the ground-truth crops: the int8 NME change.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from lgrn import metrics  # noqa: E402
from lgrn.config import resolve_config  # noqa: E402
from lgrn.data.dataset import build_test_dataset  # noqa: E402
from lgrn.data.readers import read_300w  # noqa: E402
from lgrn.engine.detector_eval import evaluate_with_detector  # noqa: E402
from lgrn.engine.evaluate import evaluate  # noqa: E402
from lgrn.backends import load_onnx_model, torch_network  # noqa: E402
from lgrn.inference import FaceAligner  # noqa: E402
from lgrn.models import load_model  # noqa: E402
from lgrn.pretrained import DEFAULT_MODEL, pretrained_path  # noqa: E402

HALVES = {"helen": "helen/", "lfpw": "lfpw/"}
CALIBRATION_FACES = 64


def default_raw_root() -> Path:
    shared = os.environ.get("LGRN_SHARED_DATA")
    return (Path(shared) if shared else REPO.parent / "shared" / "data") / "300w_recropped"


def summary(nme_io: np.ndarray, nme_ip: np.ndarray | None = None) -> dict:
    """NME (both normalisations, %) and FR / AUC at 0.1 inter-ocular."""
    out = {"count": int(len(nme_io)), "nme_io": 100 * float(np.mean(nme_io)),
           "fr_io": 100 * metrics.failure_rate(nme_io, 0.1), "auc_io": metrics.auc(nme_io, 0.1, "release"),
           "auc_io_exact": metrics.auc(nme_io, 0.1, "exact")}
    if nme_ip is not None:
        out["nme_ip"] = 100 * float(np.mean(nme_ip))
    return out


def ground_truth_crops(model, config: dict, network=None) -> dict:
    """Per-face IO / IP NME on the config's prepared test list; ``network`` (numpy in/out) replaces the
    PyTorch model (ONNX Runtime)."""
    dataset = build_test_dataset(config, model.scheme)
    if network is None:
        run = model
    else:
        def run(images: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(np.asarray(network(images.numpy()), dtype=np.float32))
    result = evaluate(run, dataset, model.scheme, torch.device("cpu"), batch_size=64, progress=False)
    common = np.array([a.get("common", 1) == 1 for a in result.attributes], dtype=bool)
    names = np.array(result.names)[common]
    io, ip = result.nme_io[common], result.nme_ip[common]
    out = {"all": summary(io, ip)}
    for half, prefix in HALVES.items():
        mask = np.array([n.startswith(prefix) for n in names], dtype=bool)
        out[half] = summary(io[mask], ip[mask])
    return out


def detector_crops(checkpoint: Path, raw_root: Path) -> dict:
    """NME with the default detector's crops on the raw 300-W common images (see the module docstring)."""
    aligner = FaceAligner.from_checkpoint(checkpoint)
    faces = [(s.name, s.image_path, s.landmarks) for s in read_300w(raw_root, "common")]
    result = evaluate_with_detector(aligner, faces)
    out = result.summary()
    for half, prefix in HALVES.items():
        mask = np.array([n.startswith(prefix) for n in result.names], dtype=bool)
        found = mask & result.found
        out[half] = {"faces": int(mask.sum()), "missed": int((mask & ~result.found).sum()),
                     "nme_io_found": 100 * float(result.nme_io[found].mean()) if found.any() else None}
    return out


def calibration_crops(model, config: dict, count: int = CALIBRATION_FACES) -> np.ndarray:
    """``count`` ground-truth crops of TRAINING faces, evenly spread over the training list."""
    tp = config["train_param"]
    calib_config = resolve_config(config, source="calibration",
                                  overrides=[f"test_param.val_root={tp['train_root']}",
                                             f"test_param.val_source={tp['train_source']}",
                                             "test_param.attr_source=null"])
    dataset = build_test_dataset(calib_config, model.scheme)
    picks = np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int)
    return np.stack([np.asarray(dataset[int(i)]["image"], dtype=np.float32) for i in picks])


def int8_change(model, config: dict, workdir: Path) -> dict:
    from lgrn.export import export_onnx, quantize_int8

    fp32_path = export_onnx(model, workdir / "model.onnx", sidecar=False)
    int8_path = quantize_int8(fp32_path, workdir / "model.int8.onnx", calibration_crops(model, config), sidecar=False)
    fp32 = ground_truth_crops(model, config, load_onnx_model(fp32_path).run_numpy)["all"]
    int8 = ground_truth_crops(model, config, load_onnx_model(int8_path).run_numpy)["all"]
    return {"onnx_fp32_nme_io": fp32["nme_io"], "onnx_int8_nme_io": int8["nme_io"],
            "int8_change_points": int8["nme_io"] - fp32["nme_io"]}


def report(name: str, checkpoint: Path, args: argparse.Namespace, workdir: Path) -> dict:
    model = load_model(checkpoint)
    config = resolve_config(model.config, source=f"{checkpoint}: config", overrides=args.set)
    out = {"model": name, "checkpoint": str(checkpoint), "crop_size": config["structure"]["crop_size"],
           "backbone": config["structure"]["backbone_name"], "head": config["structure"]["predictor_name"],
           "test_list": config["test_param"]["val_source"], "gt_crops": ground_truth_crops(model, config)}
    gt = out["gt_crops"]
    print(f"{name}: 300-W common, ground-truth crops, {gt['all']['count']} faces: NME inter-ocular "
          f"{gt['all']['nme_io']:.3f}%, inter-pupil {gt['all']['nme_ip']:.3f}%, FR@0.1 (IO) {gt['all']['fr_io']:.2f}%, "
          f"AUC@0.1 (IO) {gt['all']['auc_io']:.4f} (exact {gt['all']['auc_io_exact']:.4f}); HELEN "
          f"{gt['helen']['nme_io']:.3f}% / {gt['helen']['nme_ip']:.3f}% ({gt['helen']['count']}), LFPW "
          f"{gt['lfpw']['nme_io']:.3f}% / {gt['lfpw']['nme_ip']:.3f}% ({gt['lfpw']['count']}) (IO / IP)", flush=True)
    if args.detector:
        det = out["detector_crops"] = detector_crops(checkpoint, args.raw_root)
        print(f"{name}: 300-W common, default-detector ({det['detector']}) crops: found {det['found']} of "
              f"{det['faces']} faces ({det['missed']} missed, {det['other_boxes']} other boxes); on the found faces "
              f"NME inter-ocular {100 * det['nme_io_found']:.3f}%, inter-pupil {100 * det['nme_ip_found']:.3f}%; "
              f"misses counted as failures: FR@0.1 (IO) {100 * det['fr_io']:.2f}%, AUC@0.1 (IO) "
              f"{det['auc_io']:.4f}", flush=True)
    if args.flip:
        aligner = FaceAligner(torch_network(model, torch.device("cpu")), model.scheme, config["structure"]["crop_size"],
                              config["structure"]["is_color"], flip=True)
        f = out["gt_crops_flip"] = ground_truth_crops(model, config, aligner.run_network)
        print(f"{name}: with flip averaging (FaceAligner(flip=True)), ground-truth crops: NME inter-ocular "
              f"{f['all']['nme_io']:.3f}%, inter-pupil {f['all']['nme_ip']:.3f}%, FR@0.1 {f['all']['fr_io']:.2f}%, "
              f"AUC@0.1 {f['all']['auc_io']:.4f}", flush=True)
    if args.int8:
        q = out["int8"] = int8_change(model, config, workdir)
        print(f"{name}: ONNX Runtime on ground-truth crops: fp32 NME (IO) {q['onnx_fp32_nme_io']:.3f}%, int8 "
              f"{q['onnx_int8_nme_io']:.3f}%, change {q['int8_change_points']:+.3f} points", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], metavar="NAME=CHECKPOINT",
                        help=f"a model to evaluate (repeatable; default: the shipped {DEFAULT_MODEL})")
    parser.add_argument("--detector", action="store_true", help="also evaluate with the default detector's crops")
    parser.add_argument("--raw-root", type=Path, default=default_raw_root(),
                        help="the 300-W folder (lfpw/testset, helen/testset) for --detector")
    parser.add_argument("--int8", action="store_true", help="also the ONNX Runtime fp32 / int8 NME change")
    parser.add_argument("--flip", action="store_true", help="also the NME with flip averaging (FaceAligner(flip=True))")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. test_param.val_source=... when the data lives elsewhere")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--json", type=Path, help="write all numbers to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = []
    for item in args.model or [f"{DEFAULT_MODEL}={pretrained_path()}"]:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            parser.error(f"--model expects NAME=CHECKPOINT, got {item!r}")
        models.append((name, Path(path)))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, checkpoint in models:
            results.append(report(name, checkpoint, args, Path(tmp)))
    print()
    print(markdown_table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def markdown_table(results: list[dict]) -> str:
    """The README's table: one row per model (and per flip-averaged variant)."""
    lines = ["| model | NME IO (%) | NME IP (%) | FR@0.1 IO (%) | AUC@0.1 IO | HELEN NME IO (%) | LFPW NME IO (%) | "
             "detector crops: found, NME IO (%) |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for key, label in (("gt_crops", r["model"]), ("gt_crops_flip", r["model"] + " + flip")):
            if key not in r:
                continue
            g = r[key]
            det = r.get("detector_crops") if key == "gt_crops" else None
            det_text = f"{det['found']} / {det['faces']}, {100 * det['nme_io_found']:.2f}" if det else "-"
            lines.append(f"| {label} | {g['all']['nme_io']:.2f} | {g['all']['nme_ip']:.2f} | {g['all']['fr_io']:.2f} | "
                         f"{g['all']['auc_io']:.4f} | {g['helen']['nme_io']:.2f} | {g['lfpw']['nme_io']:.2f} | {det_text} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
