"""The training loop as released (docs/training.md, "Training as released, and what differs") with the
fixes listed there and in docs/deviations.md: SGD + MultiStepLR stepped
after each epoch, evaluation and checkpoints every ``snapshot_freq`` epochs, best-checkpoint
selection on a validation split when configured (else the release's test-set rule, stated in the
log and the report), a best tracker that survives resume, exact resume (data order and
augmentation are functions of (seed, epoch); RNG states, the iteration inside an interrupted epoch
and its running sums are checkpointed), Ctrl-C -> a resumable checkpoint, DDP, bf16 autocast,
channels_last, torch.compile and GPU-side augmentation switches.
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .. import metrics
from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import get_scheme_for_config
from ..data.dataset import LandmarkDataset, TrainData, build_test_dataset, build_train_dataset
from ..data.gpu_augment import GpuAugment
from ..losses import build_criterion
from ..models import build_model, load_model
from ..models.model import load_state_dict_strict, strip_module_prefix
from . import state as ckpt
from .distributed import DistContext, all_gather_objects, all_reduce_mean, any_rank, barrier
from .evaluate import dataset_samples, evaluate
from .loaders import build_train_loader, selection_set
from .report import write_reports
from ..atomic import write_text_atomic
from .runtime import autocast_context, resolve_device, restore_rng_state, seed_everything, to_device_images
from .schedule import build_optimizer, build_scheduler, load_scheduler_state, scheduler_state

logger = logging.getLogger("lgrn")

Hook = Callable[["Trainer", int, int], None]
SUM_KEYS = ("loss", "task", "laplace", "nme", "iterations")
RESUME_KEYS = ("state_dict", "optimizer", "scheduler", "rng", "epoch", "seed")


class Trainer:
    """One training run in ``expname``.

    ``load_path`` without ``resume`` initialises the weights (lgrn or authors' checkpoint); with
    ``resume`` everything is restored from it (default ``expname/checkpoint.pth.tar``).
    ``keep_snapshots`` also writes ``checkpoint_<epoch>.pth.tar``; ``record_indices`` logs the sample
    indices each rank trained on to ``expname/indices/rank<r>.jsonl``. ``hooks`` are called as
    ``hook(trainer, epoch, iteration)`` after every optimiser step (tests use them to interrupt).

    ``data`` (the ``TrainData`` of ``lgrn.data.dataset.build_train_dataset``) and ``test_set`` let
    several runs share already-built datasets (the demo trains two heads on one set); by default both
    are built from the config. ``self.data`` / ``self.test_set`` hold them."""

    def __init__(self, config: dict, expname: str | Path, load_path: str | Path | None = None, resume: bool = False,
                 keep_snapshots: bool = False, visualize: bool = False, record_indices: bool = False,
                 progress: bool = True, ctx: DistContext | None = None, data: TrainData | None = None,
                 test_set: LandmarkDataset | None = None):
        self.config, self.tp = config, config["train_param"]
        self.expname = Path(expname)
        self.keep_snapshots, self.visualize, self.record_indices = keep_snapshots, visualize, record_indices
        self.progress = progress
        self.ctx = ctx or DistContext()
        self.hooks: list[Hook] = []
        self.scheme = get_scheme_for_config(config)
        self.device = resolve_device(self.tp["device"])
        self.channels_last = bool(self.tp["channels_last"])
        self._stop_requested = False
        self._resume_point: tuple[int, int] | None = None  # (epoch, completed steps) while training steps run
        self.current_sums: dict[str, float] = {}

        checkpoint = None
        if resume:
            path = Path(load_path) if load_path else self.expname / ckpt.LATEST
            checkpoint = load_checkpoint(path)
            if ckpt.is_best_checkpoint(checkpoint):
                raise ValueError(f"{path}: --resume needs the latest checkpoint ({ckpt.LATEST}), which holds the "
                                 f"optimizer, scheduler and random-number state; {ckpt.BEST} keeps only the weights, "
                                 "config and metrics (use it with --load_path without --resume to start from its "
                                 "weights)")
            if "config" not in checkpoint or "scheduler" not in checkpoint:
                raise ValueError(f"{path}: --resume needs a checkpoint written by lgrn training (this one has the "
                                 "authors' layout); use --load_path without --resume to start from its weights")
            missing = [k for k in RESUME_KEYS if k not in checkpoint]
            if missing:
                raise ValueError(f"{path}: cannot resume: the checkpoint has no {', '.join(missing)} (it was not "
                                 "written by lgrn training, or was stripped, e.g. a shipped model); use --load_path "
                                 "without --resume to start from its weights")
            self._resume_path = path
            self.seed = int(checkpoint["seed"])
        else:
            seed = self.tp["seed"]
            self.seed = int(seed) if seed is not None else int.from_bytes(os.urandom(4), "little") >> 1
        self.seed = int(all_gather_objects(self.seed, self.ctx)[0])  # ranks agree on rank 0's seed
        seed_everything(self.seed)

        self.model = build_model(config).to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if load_path and not resume:
            self._load_weights(Path(load_path))
        self.optimizer = build_optimizer(self.model, self.tp)
        self.scheduler = build_scheduler(self.optimizer, self.tp)
        self.criterion = build_criterion(self.tp, self.scheme).to(self.device)
        self.data = data if data is not None else build_train_dataset(config, self.scheme, seed=self.seed)
        self.test_set = test_set if test_set is not None else build_test_dataset(config, self.scheme)
        self.loader, self.sampler = build_train_loader(self.data, self.tp, self.seed, self.ctx,
                                                       pin_memory=self.device.type == "cuda")
        self.selection_set, self.selection, self.selection_rule = selection_set(self.data, self.test_set)
        self.gpu_augment = self._build_gpu_augment() if self.tp["augment_on"] == "gpu" else None

        self.start_epoch, self.start_iteration, self.best_nme = 0, 0, math.inf
        self.epoch_sums: dict[str, float] = {}
        if checkpoint is not None:
            load_state_dict_strict(self.model, strip_module_prefix(checkpoint["state_dict"]), str(self._resume_path))
            try:
                self.optimizer.load_state_dict(checkpoint["optimizer"])
                load_scheduler_state(self.scheduler, checkpoint["scheduler"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{self._resume_path}: its optimizer / scheduler state does not fit this config "
                                 f"({type(exc).__name__}: {exc})") from None
            self.start_epoch = int(checkpoint["epoch"])
            self.start_iteration = int(checkpoint.get("iteration", 0))
            self.best_nme = float(checkpoint.get("best_nme", math.inf))
            self.epoch_sums = dict(checkpoint.get("epoch_sums") or {})
            try:
                restore_rng_state(checkpoint["rng"])  # last: building the run above consumed random numbers
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise ValueError(f"{self._resume_path}: its saved random-number state is damaged "
                                 f"({type(exc).__name__}: {exc}); resume is not possible") from None

        self.train_model: torch.nn.Module = self.model
        if self.ctx.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if self.tp["compile"]:
            self.train_model = torch.compile(self.train_model)
        self.iterations_per_epoch = self.sampler.per_rank // int(self.tp["batch_size"])
        if self.tp["max_iters_per_epoch"] is not None:
            self.iterations_per_epoch = min(self.iterations_per_epoch, int(self.tp["max_iters_per_epoch"]))

    def _load_weights(self, path: Path) -> None:
        """``--load_path`` without ``--resume``: weights only (lgrn or authors' layout, strict)."""
        if not path.is_file():
            raise FileNotFoundError(f"--load_path {path} does not exist")
        loaded = load_model(path, config=self.config)
        self.model.load_state_dict(loaded.state_dict())
        logger.info("initialised the weights from %s", path)

    def _build_gpu_augment(self) -> Any:
        self._augment_generator = torch.Generator(device=self.device)
        return GpuAugment(self.tp, self.scheme).to(self.device)

    # -- the loop -------------------------------------------------------------------------------

    def fit(self) -> dict[str, Any]:
        """Train from ``start_epoch`` to ``scheduler.epochs``; returns a summary dict."""
        epochs = int(self.tp["scheduler"]["epochs"])
        logger.info("training %s on %s (%d process(es)), seed %d, %d iterations/epoch x batch %d, epochs %d..%d",
                    self.scheme.name, self.device, self.ctx.world_size, self.seed, self.iterations_per_epoch,
                    self.tp["batch_size"], self.start_epoch, epochs)
        logger.info("best checkpoint selected on the %s", self.selection_rule)
        self.expname.mkdir(parents=True, exist_ok=True)
        if self.ctx.is_main:
            self._trim_metrics_log(self.start_epoch)
        writer = self._tensorboard()
        previous_handler = self._install_sigint()
        history: list[dict[str, Any]] = []
        bar = tqdm(total=epochs, initial=self.start_epoch, desc="epochs",
                   disable=not (self.progress and self.ctx.is_main), dynamic_ncols=True)
        try:
            for epoch in range(self.start_epoch, epochs):
                record = self._run_epoch(epoch)
                history.append(record)
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4f}", nme=record.get("eval_nme", float("nan")))
                if writer is not None:
                    for key in ("loss", "task", "laplace", "train_nme_augmented", "lr", "eval_nme"):
                        if key in record:
                            writer.add_scalar(key, record[key], epoch + 1)
        except KeyboardInterrupt:
            self._save_interrupted()
            raise
        finally:
            bar.close()
            if writer is not None:
                writer.close()
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
        if self.selection == "validation" and history:
            self._final_test_report()
        return {"best_nme": self.best_nme, "epochs": epochs, "history": history, "seed": self.seed}

    def _run_epoch(self, epoch: int) -> dict[str, Any]:
        lr = self.optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        sums = self._train_epoch(epoch)
        with warnings.catch_warnings():
            # A resume right after an epoch's last step steps the scheduler with no optimiser step in
            # this process; PyTorch warns about the order, but the order is right here.
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
            self.scheduler.step()  # after the epoch: decays land after epochs 200 and 350 complete
        count = max(sums["iterations"], 1.0)
        means = all_reduce_mean([sums["loss"] / count, sums["task"] / count, sums["laplace"] / count,
                                 sums["nme"] / count], self.ctx)
        record: dict[str, Any] = {"epoch": epoch, "lr": lr, "loss": means[0], "task": means[1], "laplace": means[2],
                                  "train_nme_augmented": means[3], "iterations": int(sums["iterations"]),
                                  "seconds": time.perf_counter() - start}
        logger.info("epoch %d: loss %.5f (task %.5f, laplace %.5f), NME on augmented training batches %.5f, "
                    "lr %.6g, %.1f s", epoch, means[0], means[1], means[2], means[3], lr, record["seconds"])
        epochs = int(self.tp["scheduler"]["epochs"])
        if (epoch + 1) % int(self.tp["snapshot_freq"]) == 0 or epoch + 1 == epochs:
            result = evaluate(self.model, self.selection_set, self.scheme, self.device,
                              int(self.config["test_param"]["batch_size"]), int(self.config["test_param"]["workers"]),
                              self.ctx, channels_last=self.channels_last, progress=self.progress,
                              desc=f"eval {self.selection}")
            is_best = result.nme < self.best_nme
            if is_best:
                self.best_nme = result.nme
            record.update(eval_nme=result.nme, eval_set=self.selection, is_best=is_best)
            logger.info("epoch %d: %s NME %.6f (best %.6f)%s", epoch, self.selection, result.nme, self.best_nme,
                        " - new best" if is_best else "")
            # The epoch's line goes into metrics.jsonl BEFORE its checkpoint: a kill in between leaves a line
            # that the resume trims (it restarts from the older checkpoint), never a checkpoint without a line.
            self._log_metrics(record)
            self._save(epoch + 1, is_best=is_best)
            if is_best and self.selection == "test" and self.ctx.is_main:
                write_reports(result, self.expname, self.scheme, self._report_info(ckpt.BEST, epoch + 1),
                              visualize=self.visualize, samples=dataset_samples(self.selection_set),
                              norm=self.config["test_param"]["norm"])
        else:
            self._log_metrics(record)
        return record

    def _log_metrics(self, record: dict[str, Any]) -> None:
        if self.ctx.is_main:
            with open(self.expname / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
                handle.flush()
                os.fsync(handle.fileno())

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        batch_size = int(self.tp["batch_size"])
        skip = self.start_iteration if epoch == self.start_epoch else 0
        sums = {k: float(self.epoch_sums.get(k, 0.0)) if skip else 0.0 for k in SUM_KEYS}
        self.current_sums = sums
        self.sampler.set_epoch(epoch)
        self.sampler.skip(skip * batch_size if skip < self.iterations_per_epoch else 0)
        self.train_model.train()
        iteration = skip
        self._resume_point = (epoch, iteration)
        print_freq = int(self.tp["print_freq"])
        bar = tqdm(total=self.iterations_per_epoch, initial=skip, desc=f"epoch {epoch}", leave=False,
                   disable=not (self.progress and self.ctx.is_main), dynamic_ncols=True)
        data_time, tick = 0.0, time.perf_counter()
        epoch_start = tick
        try:
            if iteration >= self.iterations_per_epoch:  # resumed after the last step of this epoch
                self._resume_point = None
                return sums
            for batch in self.loader:
                data_time += time.perf_counter() - tick
                loss, parts, nme = self._step(batch, epoch, iteration)
                iteration += 1
                for key, value in (("loss", loss), ("task", parts["task"]), ("laplace", parts["laplace"]),
                                   ("nme", nme), ("iterations", 1.0)):
                    sums[key] += value
                self._resume_point = (epoch, iteration)
                if self.record_indices:
                    self._record_indices(epoch, batch["index"].tolist())
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", nme_aug=f"{nme:.4f}",
                                lr=f"{self.optimizer.param_groups[0]['lr']:.2g}")
                if iteration % print_freq == 0:
                    logger.info("epoch %d [%d/%d] loss %.5f task %.5f laplace %.5f NME(augmented) %.5f data %.0f%%",
                                epoch, iteration, self.iterations_per_epoch, sums["loss"] / sums["iterations"],
                                sums["task"] / sums["iterations"], sums["laplace"] / sums["iterations"],
                                sums["nme"] / sums["iterations"],
                                100 * data_time / max(time.perf_counter() - epoch_start, 1e-9))
                for hook in self.hooks:
                    hook(self, epoch, iteration)
                if any_rank(self._stop_requested, self.ctx):
                    raise KeyboardInterrupt
                if iteration >= self.iterations_per_epoch:
                    break
                tick = time.perf_counter()
        except RuntimeError:
            if self._stop_requested:  # a DataLoader worker died of the same Ctrl-C
                raise KeyboardInterrupt from None
            raise
        finally:
            bar.close()
        self.start_iteration = 0
        self._resume_point = None
        return sums

    def _step(self, batch: dict[str, Any], epoch: int, iteration: int) -> tuple[float, dict[str, float], float]:
        targets = batch["landmarks"].to(self.device, non_blocking=True)
        if self.gpu_augment is not None:
            # Augmentation drawn from a generator seeded by (seed, epoch, iteration, rank): exact on resume.
            seed = np.random.SeedSequence([self.seed, epoch, iteration, self.ctx.rank]).generate_state(1)[0]
            self._augment_generator.manual_seed(int(seed))
            out = self.gpu_augment(batch["image"].to(self.device, non_blocking=True), targets,
                                   batch["visibility"].to(self.device), generator=self._augment_generator)
            images, targets = out["image"], out["landmarks"]
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
        else:
            images = to_device_images(batch["image"], self.device, self.channels_last)
        with autocast_context(self.device, self.tp["amp"]):
            predictions = self.train_model(images)
        loss, parts = self.criterion(predictions.float(), targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        detached = predictions.detach().float().cpu().numpy()
        nme = float(np.mean(metrics.nme(detached, targets.detach().cpu().numpy(), self.scheme)))
        return float(loss.detach()), {k: float(v.detach()) for k, v in parts.items()}, nme

    # -- checkpoints, reports, logs --------------------------------------------------------------

    def _save(self, completed_epochs: int, is_best: bool = False, iteration: int = 0,
              epoch_sums: dict[str, float] | None = None) -> None:
        if self.ctx.is_main:
            state = ckpt.build_checkpoint(self.model, self.optimizer, scheduler_state(self.scheduler), self.config,
                                          self.scheme, completed_epochs, self.best_nme, self.seed, iteration,
                                          epoch_sums, self.selection)
            # BEST first: a crash between the two saves then leaves the older LATEST, whose best NME is the
            # older one, so the resumed run re-evaluates that epoch and writes BEST again if it still wins.
            if is_best:
                save_checkpoint(self.expname / ckpt.BEST, ckpt.best_checkpoint(state))
            save_checkpoint(self.expname / ckpt.LATEST, state)
            if self.keep_snapshots and iteration == 0:
                save_checkpoint(self.expname / ckpt.snapshot_name(completed_epochs), state)
        barrier(self.ctx)

    def _save_interrupted(self) -> None:
        """Ctrl-C: checkpoint the state after the last completed optimiser step, resumable exactly.

        Outside the training steps (evaluation, saving) nothing is written: the previous snapshot
        stays the resume point."""
        if self._resume_point is None:
            logger.warning("interrupted outside the training steps: resume from the last snapshot %s",
                           self.expname / ckpt.LATEST)
            return
        epoch, iteration = self._resume_point
        if self.ctx.is_main:
            state = ckpt.build_checkpoint(self.model, self.optimizer, scheduler_state(self.scheduler), self.config,
                                          self.scheme, epoch, self.best_nme, self.seed, iteration,
                                          self.current_sums, self.selection)
            save_checkpoint(self.expname / ckpt.LATEST, state)
            logger.warning("interrupted at epoch %d iteration %d: saved %s; continue with --resume", epoch,
                           iteration, self.expname / ckpt.LATEST)

    def _report_info(self, checkpoint_name: str, epoch: int) -> dict[str, Any]:
        return {"checkpoint": str(self.expname / checkpoint_name), "epoch": epoch,
                "model": self.config["structure"]["predictor_name"], "selection": self.selection_rule}

    def _final_test_report(self) -> None:
        best_path = self.expname / ckpt.BEST
        barrier(self.ctx)
        if best_path.is_file():
            state = load_checkpoint(best_path)
            self.model.load_state_dict(strip_module_prefix(state["state_dict"]))
            epoch = int(state["epoch"])
        else:
            epoch = int(self.tp["scheduler"]["epochs"])
        result = evaluate(self.model, self.test_set, self.scheme, self.device,
                          int(self.config["test_param"]["batch_size"]), int(self.config["test_param"]["workers"]),
                          self.ctx, channels_last=self.channels_last, progress=self.progress, desc="eval test")
        if self.ctx.is_main:
            write_reports(result, self.expname, self.scheme, self._report_info(ckpt.BEST, epoch),
                          visualize=self.visualize, samples=dataset_samples(self.test_set),
                          norm=self.config["test_param"]["norm"])

    def _trim_metrics_log(self, start_epoch: int) -> None:
        """On resume keep only the epochs before ``start_epoch``, so no epoch is listed twice."""
        path = self.expname / "metrics.jsonl"
        if not path.is_file():
            return
        kept = []
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:     # a line torn by a kill mid-write: drop it, say so
                logger.warning("%s:%d: dropped an incomplete line (a run killed while writing it)", path, number)
                continue
            if isinstance(record, dict) and record.get("epoch", 0) < start_epoch:
                kept.append(line)
        write_text_atomic(path, "".join(line + "\n" for line in kept))

    def _record_indices(self, epoch: int, indices: list[int]) -> None:
        folder = self.expname / "indices"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"rank{self.ctx.rank}.jsonl", "a") as handle:
            handle.write(json.dumps({"epoch": epoch, "indices": indices}) + "\n")

    def _tensorboard(self) -> Any:
        if not self.ctx.is_main:
            return None
        try:  # deferred: tensorboard is optional and slow to import
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logger.info("tensorboard is not installed: TensorBoard scalars skipped (pip install 'lgrn[tensorboard]')")
            return None
        return SummaryWriter(str(self.expname / "log"))

    def _install_sigint(self) -> Any:
        """First Ctrl-C: finish the current step, save, stop; a second one interrupts at once."""
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum: int, frame: Any) -> None:
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            logger.warning("Ctrl-C: stopping after this step and saving a resumable checkpoint")

        return signal.signal(signal.SIGINT, handler)
