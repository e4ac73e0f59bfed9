"""What ``lgrn train``, ``lgrn evaluate`` and ``lgrn main`` (the authors' ``main.py``) run, as typed
functions (docs/training.md, "Command line"); their options are parsed in ``lgrn.cli``.

- :func:`train`: one training run in an experiment folder (config saved beside the checkpoints);
- :func:`evaluate_model`: one model file (torch checkpoint in lgrn's or the authors' layout, or an
  exported ONNX model) on the config's test set, every report written into the folder;
- :func:`evaluate_checkpoints`: every checkpoint of a folder -> ``ckpts.csv`` (``--eval_ckpts``);
- :func:`evaluate_detector_crops`: the same test faces cropped from a face detector's boxes in their
  original images (``--crops detector``).

Errors a user can fix raise ``ConfigError``, ``FileNotFoundError`` or ``ValueError`` with a one-line
message; the command line turns them into exit status 2.
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from .. import metrics
from ..backends import load_onnx_model
from ..checkpoint import load_checkpoint
from ..config import ConfigError, resolve_config
from ..data.dataset import build_test_dataset
from ..models import model_from_checkpoint
from . import state as ckpt
from .detector_eval import evaluate_with_detector, faces_from_prepared
from .distributed import DistContext
from .evaluate import dataset_samples, evaluate
from .loaders import selection_text
from .report import THRESHOLD, write_reports
from ..atomic import write_text_atomic
from .runtime import resolve_device
from .trainer import Trainer

logger = logging.getLogger("lgrn")

__all__ = ["train", "evaluate_model", "evaluate_checkpoints", "evaluate_detector_crops", "load_any_model"]


def train(config: dict, expname: Path, load_path: Path | None = None, resume: bool = False,
          keep_snapshots: bool = False, visualize: bool = False, record_indices: bool = False,
          progress: bool = True, ctx: DistContext | None = None) -> dict[str, Any]:
    """Train with the resolved ``config`` in ``expname`` (``config.yaml`` written first, on rank 0);
    returns :meth:`Trainer.fit`'s summary. ``load_path`` starts from a checkpoint's weights, or with
    ``resume`` continues exactly from it (default ``expname/checkpoint.pth.tar``)."""
    ctx = ctx or DistContext()
    if ctx.is_main:
        write_text_atomic(expname / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    trainer = Trainer(config, expname, load_path=load_path, resume=resume, keep_snapshots=keep_snapshots,
                      visualize=visualize, record_indices=record_indices, progress=progress, ctx=ctx)
    summary = trainer.fit()
    logger.info("done: best %s NME %.6f", trainer.selection, summary["best_nme"])
    return summary


def load_any_model(path: Path, config: dict | None, device: torch.device) -> tuple[Any, dict, dict[str, Any]]:
    """A torch checkpoint (lgrn or authors' layout) or an ONNX file -> (model, its config, info)."""
    if path.suffix.lower() == ".onnx":
        model = load_onnx_model(str(path))
        return model, model.config, {"checkpoint": str(path), "backend": "onnxruntime"}
    stored = load_checkpoint(path)
    model = model_from_checkpoint(stored, None if "config" in stored else config, str(path)).to(device)
    info: dict[str, Any] = {"checkpoint": str(path), "backend": "torch"}
    if "epoch" in stored:
        info["epoch"] = int(stored["epoch"])
    if stored.get("selection"):
        info["selection"] = selection_text(stored["selection"])
    return model, model.config, info


def evaluate_model(path: Path, expname: Path, config: dict | None = None, overrides: Sequence[str] = (),
                   visualize: bool = False, progress: bool = True, ctx: DistContext | None = None) -> dict[str, Any]:
    """Evaluate one model file on the test set of ``config`` (None: the model's own config with
    ``overrides``) and write every report into ``expname``; returns the analysis dict (empty on
    ranks other than 0)."""
    ctx = ctx or DistContext()
    device = resolve_device(config["train_param"]["device"] if config else "auto")
    model, model_config, info = load_any_model(path, config, device)
    data_config = config if config is not None else _resolve(model_config, overrides)
    _check_compatible(data_config, model_config, path)
    scheme = model.scheme
    dataset = build_test_dataset(data_config, scheme)
    info.setdefault("selection", "not recorded in the checkpoint")
    info["model"] = model_config["structure"]["predictor_name"]
    tp = data_config["test_param"]
    result = evaluate(model, dataset, scheme, device, int(tp["batch_size"]), int(tp["workers"]), ctx,
                      progress=progress)
    if not ctx.is_main:
        return {}
    return write_reports(result, expname, scheme, info, visualize=visualize, samples=dataset_samples(dataset),
                         norm=tp["norm"])


def evaluate_detector_crops(aligner: Any, expname: Path, config: dict | None, overrides: Sequence[str],
                            images_root: Path, gt_report: dict[str, Any]) -> dict[str, Any]:
    """``--crops detector``: the test faces found by ``aligner``'s face detector in their original
    images (``detector_eval``); writes ``detector_crops.json`` and logs both NMEs side by side.
    ``aligner``: a ``lgrn.inference.FaceAligner`` of the evaluated model (built by the caller: the
    engine does not import the serving modules); ``gt_report``: :func:`evaluate_model`'s analysis."""
    data_config = config if config is not None else _resolve(aligner.config, overrides)
    tp = data_config["test_param"]
    if len(str(tp["val_source"]).split()) != 1:
        raise ConfigError("--crops detector evaluates one test list (test_param.val_source holds several)")
    samples = dataset_samples(build_test_dataset(data_config, aligner.scheme))
    result = evaluate_with_detector(aligner, faces_from_prepared(samples, tp["val_source"], images_root))
    summary = result.summary()
    summary["gt_crops_nme_io"] = gt_report["overall"]["nme_io"]
    write_text_atomic(expname / "detector_crops.json", json.dumps(summary, indent=2) + "\n")
    logger.info("NME inter-ocular: %.6f with ground-truth crops, %.6f with %s crops on the %d of %d faces it found "
                "(%d missed, counted as failures: FR@0.1 %.4f, AUC@0.1 %.4f) -> %s", gt_report["overall"]["nme_io"],
                summary["nme_io_found"], summary["detector"], summary["found"], summary["faces"], summary["missed"],
                summary["fr_io"], summary["auc_io"], expname / "detector_crops.json")
    return summary


def evaluate_checkpoints(expname: Path, config: dict | None = None, overrides: Sequence[str] = (),
                         progress: bool = True, ctx: DistContext | None = None) -> list[dict[str, Any]]:
    """``--eval_ckpts``: every ``checkpoint_<int>.pth.tar`` (+ latest, best) in ``expname`` ->
    ``ckpts.csv`` (Name, ION, IPN, FR, AUC), minima logged (bug 7 fixed)."""
    ctx = ctx or DistContext()
    paths = ckpt.list_checkpoints(expname)
    if not paths:
        raise FileNotFoundError(f"no checkpoint_<epoch>.pth.tar, {ckpt.LATEST} or {ckpt.BEST} in {expname} "
                                "(train with --keep-snapshots to keep one per snapshot)")
    device = resolve_device(config["train_param"]["device"] if config else "auto")
    rows: list[dict[str, Any]] = []
    dataset, scheme = None, None
    for path in paths:
        model, model_config, _ = load_any_model(path, config, device)
        if dataset is None:
            scheme = model.scheme
            data_config = config if config is not None else _resolve(model_config, overrides)
            _check_compatible(data_config, model_config, path)
            dataset = build_test_dataset(data_config, scheme)
            tp = data_config["test_param"]
        result = evaluate(model, dataset, scheme, device, int(tp["batch_size"]), int(tp["workers"]), ctx,
                          progress=progress, desc=path.name)
        rows.append({"Name": path.name, "ION": result.nme, "IPN": metrics.summarize(result.nme_ip, THRESHOLD)["nme"],
                     "FR": metrics.failure_rate(result.nme_io, THRESHOLD),
                     "AUC": metrics.auc(result.nme_io, THRESHOLD, "release")})
        logger.info("%s: ION %.6f IPN %.6f", path.name, rows[-1]["ION"], rows[-1]["IPN"])
    if ctx.is_main:
        lines = ["Name,ION,IPN,FR,AUC"] + [f"{r['Name']},{r['ION']!r},{r['IPN']!r},{r['FR']!r},{r['AUC']!r}"
                                          for r in rows]
        write_text_atomic(expname / "ckpts.csv", "\n".join(lines) + "\n")
        best_ion = min(rows, key=lambda r: r["ION"] if not math.isnan(r["ION"]) else math.inf)
        best_ipn = min(rows, key=lambda r: r["IPN"] if not math.isnan(r["IPN"]) else math.inf)
        logger.info("min ION %.6f (%s), min IPN %.6f (%s) -> %s", best_ion["ION"], best_ion["Name"],
                    best_ipn["IPN"], best_ipn["Name"], expname / "ckpts.csv")
    return rows


def _check_compatible(data_config: dict, model_config: dict, path: Path) -> None:
    """The test data must be cut like the model's input (the release would run silently on wrong crops)."""
    for key in ("crop_size", "num_kpts", "is_color"):
        have, want = data_config["test_param"][key], model_config["structure"][key]
        if have != want:
            raise ConfigError(f"{path}: the model was built with {key} = {want} but the config's test_param.{key} "
                              f"is {have}; evaluate with the config the model was trained with (or --set it)")


def _resolve(model_config: dict, overrides: Sequence[str]) -> dict:
    return resolve_config(model_config, "<checkpoint config>", list(overrides))
