"""Command-line entry points: ``release_main`` (the authors' ``main.py`` flags, L-GRN.md §6.1),
``train_main`` (``lgrn train``) and ``evaluate_main`` (``lgrn evaluate``, also for ONNX models).

All three share one flow: load and validate the config (``--set key=value`` overrides), create the
experiment folder with parents, join the process group when started by torchrun, run, and shut a
distributed worker down cleanly. Errors a user can fix (bad config, missing file) print one line and
return exit status 2; Ctrl-C returns 130 after saving a resumable checkpoint.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import yaml

from ..config import ConfigError, load_config
from . import state as ckpt
from .distributed import DistContext, exit_worker, init_distributed, shutdown
from .runtime import atomic_write_text, resolve_device, run_logging

logger = logging.getLogger("lgrn")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--load_path", "--load-path", dest="load_path", default=None,
                        help="checkpoint (lgrn or the authors' layout; ONNX for evaluation)")
    parser.add_argument("--resume", action="store_true", help="continue training exactly from --load_path "
                        "(default: EXPNAME/checkpoint.pth.tar)")
    parser.add_argument("--visualize", action="store_true", help="write vis_result/<name> images")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train_param.batch_size=32 (repeatable)")
    parser.add_argument("--keep-snapshots", action="store_true",
                        help="also keep checkpoint_<epoch>.pth.tar at every snapshot (for --eval_ckpts)")
    parser.add_argument("--record-indices", action="store_true",
                        help="write the training sample indices seen per rank to EXPNAME/indices/")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def release_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description="L-GRN training / evaluation (release CLI)")
    parser.add_argument("--config", required=True, help="YAML config (release layout)")
    parser.add_argument("--expname", required=True, help="experiment folder (created with parents)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--train", action="store_true", help="train with the config; checkpoints and logs in EXPNAME")
    mode.add_argument("--evaluate", action="store_true",
                      help="evaluate --load_path on the config's test set; reports in EXPNAME")
    mode.add_argument("--eval_ckpts", "--eval-ckpts", dest="eval_ckpts", action="store_true",
                      help="evaluate every checkpoint_<epoch>.pth.tar (+ latest, best) in EXPNAME -> ckpts.csv")
    _add_common(parser)
    return parser


def release_main(argv: list[str]) -> int:
    """``python main.py --config CFG --expname DIR (--train | --evaluate | --eval_ckpts) ...``."""
    args = release_parser().parse_args(argv)
    mode = "train" if args.train else "evaluate" if args.evaluate else "eval_ckpts"
    return _run(args, mode)


def train_main(argv: list[str]) -> int:
    """``lgrn train --config CFG --expname DIR [--load_path CKPT] [--resume] [--set k=v ...]``."""
    parser = argparse.ArgumentParser(prog="lgrn train", description="train a landmark model")
    parser.add_argument("--config", required=True, help="YAML config (release layout), e.g. "
                        "experiments/300W/config_mobilenet.yaml")
    parser.add_argument("--expname", required=True, help="experiment folder for checkpoints, logs and reports "
                        "(created with parents)")
    _add_common(parser)
    return _run(parser.parse_args(argv), "train")


def evaluate_main(argv: list[str]) -> int:
    """``lgrn evaluate [--config CFG] --expname DIR (--load_path CKPT|MODEL.onnx | --eval_ckpts)``."""
    parser = argparse.ArgumentParser(prog="lgrn evaluate", description="evaluate a checkpoint or an ONNX model")
    parser.add_argument("--config", default=None, help="config for the test data (default: the checkpoint's)")
    parser.add_argument("--expname", required=True, help="folder for the reports")
    parser.add_argument("--eval_ckpts", "--eval-ckpts", dest="eval_ckpts", action="store_true")
    parser.add_argument("--model", "--checkpoint", dest="model", default=None, help="alias of --load_path")
    parser.add_argument("--crops", choices=("gt", "detector"), default="gt",
                        help="gt (default): crops from the ground-truth landmark box, as the papers; detector: "
                        "also find each face with the default face detector in its original image and crop from "
                        "that box, as `lgrn predict` does (needs --images-root); both NMEs are reported")
    parser.add_argument("--images-root", default=None,
                        help="with --crops detector: the folder given to `lgrn prepare --root` (the originals named "
                        "in the test list's *_crops.jsonl)")
    _add_common(parser)
    args = parser.parse_args(argv)
    args.load_path = args.load_path or args.model
    if args.crops == "detector" and (args.eval_ckpts or not args.images_root):
        parser.error("--crops detector needs --images-root (the folder given to `lgrn prepare --root`) and one "
                     "--load_path (not --eval_ckpts)")
    return _run(args, "eval_ckpts" if args.eval_ckpts else "evaluate")


def _check_args(args: argparse.Namespace, mode: str) -> None:
    if mode == "evaluate" and not args.load_path:
        raise ConfigError("--evaluate needs --load_path CHECKPOINT (the release silently evaluated random weights)")
    if args.resume and mode != "train":
        raise ConfigError("--resume only makes sense with --train")
    if args.load_path and mode != "eval_ckpts" and not Path(args.load_path).is_file():
        raise FileNotFoundError(f"--load_path {args.load_path} does not exist")
    if mode == "train" and args.config is None:
        raise ConfigError("training needs --config")


def _run(args: argparse.Namespace, mode: str) -> int:
    ctx = DistContext()
    code = 0
    try:
        _check_args(args, mode)
        config = load_config(args.config, args.overrides) if args.config else None
        expname = Path(args.expname)
        expname.mkdir(parents=True, exist_ok=True)
        device_name = config["train_param"]["device"] if config else "auto"
        ctx = init_distributed(resolve_device(device_name).type)
        log_name = "train.log" if mode == "train" else "evaluate.log"
        with run_logging(expname, ctx.is_main, log_name):
            if mode == "train":
                _train(args, config, expname, ctx)
            elif mode == "evaluate":
                report = evaluate_path(Path(args.load_path), expname, config, ctx, visualize=args.visualize,
                                       overrides=args.overrides, progress=not args.no_progress)
                if getattr(args, "crops", "gt") == "detector" and ctx.is_main:
                    evaluate_detector_crops(Path(args.load_path), expname, config, args.overrides,
                                            Path(args.images_root), report)
            else:
                evaluate_checkpoints(expname, config, ctx, overrides=args.overrides, progress=not args.no_progress)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    if ctx.enabled:
        if code == 0:
            shutdown(ctx)
        exit_worker(code)
    return code


def _train(args: argparse.Namespace, config: dict, expname: Path, ctx: DistContext) -> None:
    from .trainer import Trainer

    if ctx.is_main:
        atomic_write_text(expname / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    trainer = Trainer(config, expname, load_path=args.load_path, resume=args.resume,
                      keep_snapshots=args.keep_snapshots, visualize=args.visualize,
                      record_indices=args.record_indices, progress=not args.no_progress, ctx=ctx)
    summary = trainer.fit()
    logger.info("done: best %s NME %.6f", trainer.selection, summary["best_nme"])


def load_any_model(path: Path, config: dict | None, device: Any) -> tuple[Any, dict, dict[str, Any]]:
    """A torch checkpoint (lgrn or authors' layout) or an ONNX file -> (model, its config, info)."""
    if path.suffix.lower() == ".onnx":
        from ..export import load_onnx_model

        model = load_onnx_model(str(path))
        return model, model.config, {"checkpoint": str(path), "backend": "onnxruntime"}
    from ..checkpoint import load_checkpoint
    from ..models import model_from_checkpoint

    stored = load_checkpoint(path)
    model = model_from_checkpoint(stored, None if "config" in stored else config, str(path)).to(device)
    info: dict[str, Any] = {"checkpoint": str(path), "backend": "torch"}
    if "epoch" in stored:
        info["epoch"] = int(stored["epoch"])
    if stored.get("selection"):
        info["selection"] = ckpt_selection_text(stored["selection"])
    return model, model.config, info


def ckpt_selection_text(selection: str) -> str:
    from .loaders import SELECTION_TEST

    return SELECTION_TEST if selection == "test" else "validation split (train_param.validation)"


def evaluate_path(path: Path, expname: Path, config: dict | None, ctx: DistContext, visualize: bool = False,
                  overrides: list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """Evaluate one model file on the config's test set and write every report into ``expname``."""
    from ..data.dataset import build_test_dataset
    from .evaluate import dataset_samples, evaluate
    from .report import write_reports

    device = resolve_device(config["train_param"]["device"] if config else "auto")
    model, model_config, info = load_any_model(path, config, device)
    data_config = config if config is not None else _resolve(model_config, overrides or [])
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


def evaluate_detector_crops(path: Path, expname: Path, config: dict | None, overrides: list[str],
                            images_root: Path, gt_report: dict[str, Any]) -> dict[str, Any]:
    """``--crops detector``: the test faces found by the default detector in their original images
    (``detector_eval``); writes ``detector_crops.json`` and logs both NMEs side by side."""
    from ..data.dataset import build_test_dataset
    from ..inference import FaceAligner
    from .detector_eval import evaluate_with_detector, faces_from_prepared
    from .evaluate import dataset_samples

    if path.suffix.lower() == ".onnx":
        aligner = FaceAligner.from_checkpoint(path)
    else:
        aligner = FaceAligner.from_checkpoint(path, device="auto")
    data_config = config if config is not None else _resolve(aligner.config, overrides)
    tp = data_config["test_param"]
    if len(str(tp["val_source"]).split()) != 1:
        raise ConfigError("--crops detector evaluates one test list (test_param.val_source holds several)")
    samples = dataset_samples(build_test_dataset(data_config, aligner.scheme))
    result = evaluate_with_detector(aligner, faces_from_prepared(samples, tp["val_source"], images_root))
    summary = result.summary()
    summary["gt_crops_nme_io"] = gt_report["overall"]["nme_io"]
    atomic_write_text(expname / "detector_crops.json", json.dumps(summary, indent=2) + "\n")
    logger.info("NME inter-ocular: %.6f with ground-truth crops, %.6f with %s crops on the %d of %d faces it found "
                "(%d missed, counted as failures: FR@0.1 %.4f, AUC@0.1 %.4f) -> %s", gt_report["overall"]["nme_io"],
                summary["nme_io_found"], summary["detector"], summary["found"], summary["faces"], summary["missed"],
                summary["fr_io"], summary["auc_io"], expname / "detector_crops.json")
    return summary


def _check_compatible(data_config: dict, model_config: dict, path: Path) -> None:
    """The test data must be cut like the model's input (the release would run silently on wrong crops)."""
    for key in ("crop_size", "num_kpts", "is_color"):
        have, want = data_config["test_param"][key], model_config["structure"][key]
        if have != want:
            raise ConfigError(f"{path}: the model was built with {key} = {want} but the config's test_param.{key} "
                              f"is {have}; evaluate with the config the model was trained with (or --set it)")


def _resolve(model_config: dict, overrides: list[str]) -> dict:
    from ..config import resolve_config

    return resolve_config(model_config, "<checkpoint config>", overrides)


def evaluate_checkpoints(expname: Path, config: dict | None, ctx: DistContext, overrides: list[str] | None = None,
                         progress: bool = True) -> list[dict[str, Any]]:
    """``--eval_ckpts``: every ``checkpoint_<int>.pth.tar`` (+ latest, best) in ``expname`` ->
    ``ckpts.csv`` (Name, ION, IPN, FR, AUC), minima logged (bug 7 fixed)."""
    from .. import metrics
    from ..data.dataset import build_test_dataset
    from .evaluate import evaluate
    from .report import THRESHOLD

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
            data_config = config if config is not None else _resolve(model_config, overrides or [])
            _check_compatible(data_config, model_config, path)
            dataset = build_test_dataset(data_config, scheme)
            tp = data_config["test_param"]
        result = evaluate(model, dataset, scheme, device, int(tp["batch_size"]), int(tp["workers"]), ctx,
                          progress=progress, desc=path.name)
        rows.append({"Name": path.name, "ION": result.nme, "IPN": float(result.nme_ip.mean()),
                     "FR": metrics.failure_rate(result.nme_io, THRESHOLD),
                     "AUC": metrics.auc(result.nme_io, THRESHOLD, "release")})
        logger.info("%s: ION %.6f IPN %.6f", path.name, rows[-1]["ION"], rows[-1]["IPN"])
    if ctx.is_main:
        lines = ["Name,ION,IPN,FR,AUC"] + [f"{r['Name']},{r['ION']!r},{r['IPN']!r},{r['FR']!r},{r['AUC']!r}"
                                          for r in rows]
        atomic_write_text(expname / "ckpts.csv", "\n".join(lines) + "\n")
        best_ion = min(rows, key=lambda r: r["ION"] if not math.isnan(r["ION"]) else math.inf)
        best_ipn = min(rows, key=lambda r: r["IPN"] if not math.isnan(r["IPN"]) else math.inf)
        logger.info("min ION %.6f (%s), min IPN %.6f (%s) -> %s", best_ion["ION"], best_ion["Name"],
                    best_ipn["IPN"], best_ipn["Name"], expname / "ckpts.csv")
    return rows
