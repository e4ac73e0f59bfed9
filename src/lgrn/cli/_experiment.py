"""The options and the run flow shared by ``lgrn train``, ``lgrn evaluate`` and ``lgrn main`` (the
authors' ``main.py``; docs/training.md, "Command line").

One flow for all three: load and validate the config (``--set key=value`` overrides), create the
experiment folder with parents, join the process group when started by torchrun, run the typed
``lgrn.engine.commands`` function, and shut a distributed worker down cleanly. Errors a user can fix
(bad config, missing file) print one line and return exit status 2; Ctrl-C returns 130 after the
trainer saved a resumable checkpoint.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lgrn.config import ConfigError, load_config
from lgrn.engine import commands
from lgrn.engine.distributed import DistContext, exit_worker, init_distributed, shutdown
from lgrn.engine.runtime import resolve_device, run_logging
from lgrn.inference import FaceAligner

TRAIN, EVALUATE, EVAL_CKPTS = "train", "evaluate", "eval_ckpts"


def add_load_path(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--load_path", "--load-path", dest="load_path", default=None,
                        help="checkpoint (lgrn or the authors' layout; ONNX for evaluation)")


def add_resume(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resume", action="store_true", help="continue training exactly from --load_path "
                        "(default: EXPNAME/checkpoint.pth.tar)")


def add_visualize_and_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--visualize", action="store_true", help="write vis_result/<name> images")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train_param.batch_size=32 (repeatable)")


def add_training_outputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-snapshots", action="store_true",
                        help="also keep checkpoint_<epoch>.pth.tar at every snapshot (for --eval_ckpts)")
    parser.add_argument("--record-indices", action="store_true",
                        help="write the training sample indices seen per rank to EXPNAME/indices/")


def add_no_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``lgrn train`` and ``lgrn main`` after ``--config`` / ``--expname``, in the
    release's order."""
    add_load_path(parser)
    add_resume(parser)
    add_visualize_and_set(parser)
    add_training_outputs(parser)
    add_no_progress(parser)


def check_arguments(args: argparse.Namespace, mode: str) -> None:
    """The combinations argparse cannot check, as named errors."""
    if mode == EVALUATE and not args.load_path:
        raise ConfigError("--evaluate needs --load_path CHECKPOINT (the release silently evaluated random weights)")
    if getattr(args, "resume", False) and mode != TRAIN:
        raise ConfigError("--resume only makes sense with --train")
    if args.load_path and mode != EVAL_CKPTS and not Path(args.load_path).is_file():
        raise FileNotFoundError(f"--load_path {args.load_path} does not exist")
    if mode == TRAIN and args.config is None:
        raise ConfigError("training needs --config")


def run(args: argparse.Namespace, mode: str) -> int:
    """Run ``mode`` (train, evaluate or eval_ckpts) with the parsed options; returns the exit status."""
    ctx = DistContext()
    code = 0
    try:
        check_arguments(args, mode)
        config = load_config(args.config, args.overrides) if args.config else None
        expname = Path(args.expname)
        expname.mkdir(parents=True, exist_ok=True)
        device_name = config["train_param"]["device"] if config else "auto"
        ctx = init_distributed(resolve_device(device_name).type)
        log_name = "train.log" if mode == TRAIN else "evaluate.log"
        with run_logging(expname, ctx.is_main, log_name):
            _run_mode(args, mode, config, expname, ctx)
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


def _run_mode(args: argparse.Namespace, mode: str, config: dict | None, expname: Path, ctx: DistContext) -> None:
    progress = not args.no_progress
    load_path = Path(args.load_path) if args.load_path else None
    if mode == TRAIN:
        commands.train(config, expname, load_path=load_path, resume=args.resume,
                       keep_snapshots=args.keep_snapshots, visualize=args.visualize,
                       record_indices=args.record_indices, progress=progress, ctx=ctx)
    elif mode == EVALUATE:
        report = commands.evaluate_model(load_path, expname, config, overrides=args.overrides,
                                         visualize=args.visualize, progress=progress, ctx=ctx)
        if getattr(args, "crops", "gt") == "detector" and ctx.is_main:
            aligner = (FaceAligner.from_checkpoint(load_path) if load_path.suffix.lower() == ".onnx"
                       else FaceAligner.from_checkpoint(load_path, device="auto"))
            commands.evaluate_detector_crops(aligner, expname, config, args.overrides, Path(args.images_root),
                                             report)
    else:
        commands.evaluate_checkpoints(expname, config, overrides=args.overrides, progress=progress, ctx=ctx)
