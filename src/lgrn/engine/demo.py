"""What ``lgrn demo`` runs (docs/training.md, "The demo"): train L-GRN and the FC baseline on
synthetic faces (no download) with a light backbone at 128 px and the fast CPU path, evaluate both on held-out synthetic faces that include
occluded ones, and compare them: NME, FR@0.1, AUC@0.1, NME on visible vs occluded landmarks,
parameters and ms per face. Writes the table (markdown + json), the CED plot of both models and a
grid of predictions into the output folder. Then the shipped 68-point model runs on real photos
(``demo_real``: ``real_faces.png``, ``real_faces.json``).

The configs are ``experiments/synthetic/demo_lgrn.yaml`` and ``demo_fc.yaml`` (the release schema);
both heads train on the very same generated images.
"""
from __future__ import annotations

import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from .. import metrics
from ..atomic import write_bytes_atomic
from ..checkpoint import load_checkpoint
from ..config import get_scheme_for_config, load_config
from ..data.dataset import build_test_dataset, build_train_dataset
from . import state as ckpt
from .demo_real import run_real_faces
from .evaluate import EvalResult, dataset_samples, evaluate
from .report import draw_landmarks, plot_ced, sample_image, visibility_split
from ..atomic import write_text_atomic
from .runtime import run_logging
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
    data = build_train_dataset(first, scheme, seed=seed)
    test_set = build_test_dataset(first, scheme)
    logger.info("generated %d training / %d validation / %d test synthetic faces in %.1f s", len(data.dataset),
                len(data.val_dataset) if data.val_dataset is not None else 0, len(test_set),
                time.perf_counter() - start)
    rows, results = [], {}
    for name, config in configs.items():
        folder = out / name.lower().replace("-", "")
        start = time.perf_counter()
        trainer = Trainer(config, folder, progress=progress, data=data, test_set=test_set)
        trainer.fit()
        seconds = time.perf_counter() - start
        state = load_checkpoint(folder / ckpt.BEST)
        trainer.model.load_state_dict(state["state_dict"])
        result = evaluate(trainer.model, test_set, scheme, torch.device("cpu"),
                          int(config["test_param"]["batch_size"]), 0, progress=progress, desc=f"test {name}")
        params = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        latency = ms_per_face(trainer.model, int(config["structure"]["crop_size"]))
        rows.append(_row(name, result, scheme, params, latency, seconds))
        results[name] = result
        logger.info("%s: test NME %.4f in %.0f s of training", name, result.nme, seconds)
    note = (f"Synthetic faces ({len(data.dataset)} training, {len(test_set)} test images, "
            f"{first['structure']['backbone_name']} at {first['structure']['crop_size']} px, "
            f"{first['train_param']['scheduler']['epochs']} epochs, amp={first['train_param']['amp']}, "
            f"channels_last={first['train_param']['channels_last']}); best checkpoint chosen on a validation "
            "split; NME by inter-ocular distance; ms / face = eager fp32 batch 1 on this CPU with "
            f"{torch.get_num_threads()} threads.")
    write_text_atomic(out / "results.md", results_markdown(rows, note))
    write_text_atomic(out / "results.json", json.dumps({"rows": rows, "note": note}, indent=2) + "\n")
    plot_ced({name: r.nme_io for name, r in results.items()}, out / "ced.png")
    grid = prediction_grid(results, dataset_samples(test_set))
    ok, encoded = cv2.imencode(".png", grid)
    if not ok:
        raise RuntimeError("cannot encode the prediction grid")
    write_bytes_atomic(out / "predictions.png", encoded.tobytes())
    print(results_markdown(rows, note))
    print(f"written to {out}: results.md, results.json, ced.png, predictions.png, lgrn/, fc/")
    return rows


def demo(out: Path, quick: bool = False, progress: bool = True, overrides: list[str] | None = None,
         real_faces: bool = True, photos: Path | None = None) -> list[dict[str, Any]]:
    """The whole demo into ``out`` (created), logged to ``out/demo.log``: :func:`run_demo`, then,
    unless ``real_faces`` is False, the shipped model on real photos (``photos`` or the samples beside
    a source checkout). Returns the table rows."""
    out.mkdir(parents=True, exist_ok=True)
    with run_logging(out, True, "demo.log"):
        rows = run_demo(out, quick=quick, progress=progress, overrides=overrides)
        if real_faces:
            run_real_faces(out, photos)
    return rows
