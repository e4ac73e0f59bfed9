"""``lgrn demo``: train L-GRN and the FC baseline on synthetic faces (no download) with a light
backbone at 128 px and the fast CPU path, evaluate both on held-out synthetic faces that include
occluded ones, and compare them: NME, FR@0.1, AUC@0.1, NME on visible vs occluded landmarks,
parameters and ms per face. Writes the table (markdown + json), the CED plot of both models and a
grid of predictions into the output folder. Then the shipped 68-point model runs on real photos
(``demo_real``: ``real_faces.png``, ``real_faces.json``).

The configs are ``experiments/synthetic/demo_lgrn.yaml`` and ``demo_fc.yaml`` (the release schema);
both heads train on the very same generated images.
"""
from __future__ import annotations

import argparse
import json
import sys
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..checkpoint import load_checkpoint
from ..config import get_scheme_for_config, load_config
from .demo_real import run_real_faces
from .evaluate import EvalResult, dataset_samples, evaluate
from .loaders import build_training_data
from .report import draw_landmarks, plot_ced, sample_image, visibility_split
from ..atomic import write_bytes_atomic
from .runtime import atomic_write_text, run_logging
from .trainer import Trainer

logger = logging.getLogger("lgrn")

CONFIG_DIR = Path(__file__).resolve().parents[3] / "experiments" / "synthetic"
MODELS = (("L-GRN", "demo_lgrn.yaml"), ("FC", "demo_fc.yaml"))
QUICK = ("train_param.synthetic.num_images=160", "test_param.synthetic.num_images=48",
         "train_param.scheduler.epochs=2", "train_param.scheduler.milestones=[1, 2]",
         "train_param.snapshot_freq=1")


def ms_per_face(model: torch.nn.Module, size: int, channels: int = 3, runs: int = 20) -> float:
    """Median eager fp32 latency of one face crop (batch 1) on the CPU, in milliseconds."""
    model = model.eval().cpu()
    image = torch.randn(1, channels, size, size)
    with torch.no_grad():
        for _ in range(3):
            model(image)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(image)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _row(name: str, result: EvalResult, scheme: Any, params: int, latency: float, seconds: float) -> dict[str, Any]:
    from .. import metrics

    split = visibility_split(result, scheme) or {}
    return {"model": name, "nme": result.nme, "fr": metrics.failure_rate(result.nme_io, 0.1),
            "auc": metrics.auc(result.nme_io, 0.1, "release"), "nme_visible": split.get("visible_nme"),
            "nme_occluded": split.get("occluded_nme"), "parameters": params, "ms_per_face": latency,
            "train_seconds": seconds, "test_images": result.count}


def results_markdown(rows: list[dict[str, Any]], note: str) -> str:
    def pct(value: Any) -> str:
        return "-" if value is None or not np.isfinite(value) else f"{100 * value:.2f}"

    lines = ["| model | NME (%) | FR@0.1 (%) | AUC@0.1 | NME visible (%) | NME occluded (%) | parameters (M) | "
             "ms / face | training (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {pct(r['nme'])} | {pct(r['fr'])} | {r['auc']:.4f} | {pct(r['nme_visible'])} | "
                     f"{pct(r['nme_occluded'])} | {r['parameters'] / 1e6:.2f} | {r['ms_per_face']:.1f} | "
                     f"{r['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n\n" + note + "\n"


def prediction_grid(results: dict[str, EvalResult], samples: list, count: int = 8, cell: int = 160) -> np.ndarray:
    """One row per model, one column per test face (occluded faces first): ground truth red,
    prediction green."""
    occluded = [i for i, s in enumerate(samples) if s.visibility is not None and not np.all(s.visibility)]
    order = (occluded[: count // 2] + [i for i in range(len(samples)) if i not in occluded])[:count]
    rows = []
    for name, result in results.items():
        tiles = []
        for i in order:
            image = sample_image(samples[i])
            tile = draw_landmarks(image, result.predictions[i], result.ground_truth[i])
            tile = cv2.resize(tile, (cell, cell), interpolation=cv2.INTER_AREA)
            cv2.putText(tile, name, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(tile)
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def run_demo(out: Path, quick: bool = False, progress: bool = True,
             overrides: list[str] | None = None) -> list[dict[str, Any]]:
    """Train and compare both models; returns the table rows."""
    if not CONFIG_DIR.is_dir():
        raise FileNotFoundError(f"the demo configs are not at {CONFIG_DIR}: run the demo from a source checkout "
                                "of lgrn (experiments/synthetic/demo_lgrn.yaml, demo_fc.yaml)")
    extra = list(QUICK if quick else ()) + list(overrides or [])
    configs = {name: load_config(CONFIG_DIR / file, extra) for name, file in MODELS}
    first = next(iter(configs.values()))
    scheme = get_scheme_for_config(first)
    seed = int(first["train_param"]["seed"] or 0)
    start = time.perf_counter()
    data = build_training_data(first, scheme, seed)
    logger.info("generated %d training / %d validation / %d test synthetic faces in %.1f s", len(data.train),
                len(data.validation) if data.validation is not None else 0, len(data.test),
                time.perf_counter() - start)
    rows, results = [], {}
    for name, config in configs.items():
        folder = out / name.lower().replace("-", "")
        start = time.perf_counter()
        trainer = Trainer(config, folder, progress=progress, data=data)
        trainer.fit()
        seconds = time.perf_counter() - start
        state = load_checkpoint(folder / "checkpoint_best.pth.tar")
        trainer.model.load_state_dict(state["state_dict"])
        result = evaluate(trainer.model, data.test, scheme, torch.device("cpu"),
                          int(config["test_param"]["batch_size"]), 0, progress=progress, desc=f"test {name}")
        params = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        latency = ms_per_face(trainer.model, int(config["structure"]["crop_size"]))
        rows.append(_row(name, result, scheme, params, latency, seconds))
        results[name] = result
        logger.info("%s: test NME %.4f in %.0f s of training", name, result.nme, seconds)
    note = (f"Synthetic faces ({len(data.train)} training, {len(data.test)} test images, "
            f"{first['structure']['backbone_name']} at {first['structure']['crop_size']} px, "
            f"{first['train_param']['scheduler']['epochs']} epochs, amp={first['train_param']['amp']}, "
            f"channels_last={first['train_param']['channels_last']}); best checkpoint chosen on a validation "
            "split; NME by inter-ocular distance; ms / face = eager fp32 batch 1 on this CPU with "
            f"{torch.get_num_threads()} threads.")
    atomic_write_text(out / "results.md", results_markdown(rows, note))
    atomic_write_text(out / "results.json", json.dumps({"rows": rows, "note": note}, indent=2) + "\n")
    plot_ced({name: r.nme_io for name, r in results.items()}, out / "ced.png")
    grid = prediction_grid(results, dataset_samples(data.test))
    ok, encoded = cv2.imencode(".png", grid)
    if not ok:
        raise RuntimeError("cannot encode the prediction grid")
    write_bytes_atomic(out / "predictions.png", encoded.tobytes())
    print(results_markdown(rows, note))
    print(f"written to {out}: results.md, results.json, ced.png, predictions.png, lgrn/, fc/")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lgrn demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    parser.add_argument("--quick", action="store_true", help="a tiny run (seconds) to check the set-up")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of both demo configs")
    parser.add_argument("--photos", type=Path, default=None,
                        help="a folder of your own photos for the shipped model (default: the real samples beside "
                        "a source checkout, ../shared/data)")
    parser.add_argument("--no-real-faces", action="store_true", help="skip the shipped model on real photos")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.photos is not None and not args.photos.is_dir():
        parser.error(f"--photos {args.photos} is not a folder")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        with run_logging(out, True, "demo.log"):
            run_demo(out, quick=args.quick, progress=not args.no_progress, overrides=args.overrides)
            if not args.no_real_faces:
                run_real_faces(out, args.photos)
    except KeyboardInterrupt:
        print(f"lgrn demo: interrupted; what was finished is in {out}", file=sys.stderr)
        return 130
    return 0
