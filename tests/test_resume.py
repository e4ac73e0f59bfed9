"""Exact resume: on CPU with a fixed seed, a run interrupted (KeyboardInterrupt mid-epoch, or SIGINT at
an epoch's last step) and resumed with --resume gives the same per-epoch losses, the same data order,
the same best checkpoint and the same final weights as an uninterrupted run."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from lgrn import load_config
from lgrn.checkpoint import load_checkpoint
from lgrn.cli.release import main as release_main
from lgrn.engine.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "experiments" / "synthetic" / "tiny.yaml"
COMPARED = ("epoch", "lr", "loss", "task", "laplace", "train_nme_augmented", "iterations", "eval_nme", "is_best")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _records(exp: Path) -> list[dict]:
    lines = (exp / "metrics.jsonl").read_text().splitlines()
    return [{k: r.get(k) for k in COMPARED} for r in map(json.loads, lines)]


def _indices(exp: Path) -> list[tuple[int, list[int]]]:
    lines = (exp / "indices" / "rank0.jsonl").read_text().splitlines()
    return [(r["epoch"], r["indices"]) for r in map(json.loads, lines)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    exp = tmp_path_factory.mktemp("resume") / "uninterrupted"
    Trainer(load_config(TINY), exp, record_indices=True, progress=False).fit()
    return exp


def _interrupt_at(epoch: int, iteration: int, how: str):
    def hook(trainer, e, i):
        if (e, i) == (epoch, iteration):
            if how == "raise":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGINT)   # the trainer's handler finishes the step, then stops
    return hook


@pytest.mark.parametrize("epoch, iteration, how", [(1, 2, "raise"), (0, 4, "sigint")])
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(reference, tmp_path, epoch, iteration, how):
    exp = tmp_path / "interrupted"
    trainer = Trainer(load_config(TINY), exp, record_indices=True, progress=False)
    assert trainer.iterations_per_epoch == 4
    trainer.hooks.append(_interrupt_at(epoch, iteration, how))
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    saved = load_checkpoint(exp / "checkpoint.pth.tar")
    assert (saved["epoch"], saved["iteration"]) == (epoch, iteration)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler    # handler restored

    code = release_main(["--config", str(TINY), "--expname", str(exp), "--train", "--resume", "--record-indices",
                         "--no-progress"])
    assert code == 0
    assert _records(exp) == _records(reference)           # same losses, lr, evaluations; no epoch twice
    assert _indices(exp) == _indices(reference)           # same data order, every batch once
    final, expected = load_checkpoint(exp / "checkpoint.pth.tar"), load_checkpoint(reference / "checkpoint.pth.tar")
    assert final["epoch"] == expected["epoch"] == 3
    for key, value in expected["state_dict"].items():
        assert torch.equal(final["state_dict"][key], value), key
    best, expected_best = load_checkpoint(exp / "checkpoint_best.pth.tar"), load_checkpoint(
        reference / "checkpoint_best.pth.tar")
    assert best["epoch"] == expected_best["epoch"] and best["best_nme"] == expected_best["best_nme"]


def test_resume_keeps_the_best_tracker(reference, tmp_path):
    """Release bug 8: the best NME reset on resume, so the first evaluation after it always won."""
    exp = tmp_path / "exp"
    trainer = Trainer(load_config(TINY), exp, progress=False)
    trainer.hooks.append(_interrupt_at(2, 1, "raise"))
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    best_before = load_checkpoint(exp / "checkpoint.pth.tar")["best_nme"]
    resumed = Trainer(load_config(TINY), exp, resume=True, progress=False)
    assert resumed.best_nme == best_before < float("inf")
    assert (resumed.start_epoch, resumed.start_iteration) == (2, 1)


def test_resume_needs_an_lgrn_checkpoint(tmp_path):
    authors = tmp_path / "authors.pth.tar"
    torch.save({"epoch": 2, "optimizer": {}, "state_dict": {"backbone.conv1.weight": torch.zeros(1)}}, authors)
    with pytest.raises(ValueError, match="--resume needs a checkpoint written by lgrn"):
        Trainer(load_config(TINY), tmp_path / "exp", load_path=authors, resume=True, progress=False)


class Killed(BaseException):
    """Stands for kill -9: nothing of the trainer's own runs after it."""


def test_a_kill_between_the_two_saves_loses_nothing(reference, tmp_path, monkeypatch):
    """The process dies after writing the new best checkpoint and before the latest one, and leaves a
    torn line at the end of metrics.jsonl; the resume still gives the uninterrupted run's log and best."""
    import lgrn.engine.trainer as trainer_module

    exp = tmp_path / "exp"
    real = trainer_module.save_checkpoint
    saves: dict[int, int] = {}

    def dying(path, state):
        # the second file written for a new best after epoch 1 (which file comes second is the trainer's choice)
        saves[state["epoch"]] = saves.get(state["epoch"], 0) + 1
        if state["epoch"] >= 2 and saves[state["epoch"]] == 2:
            raise Killed
        real(path, state)

    monkeypatch.setattr(trainer_module, "save_checkpoint", dying)
    with pytest.raises(Killed):
        Trainer(load_config(TINY), exp, progress=False).fit()
    monkeypatch.undo()
    killed_at = max(saves)
    assert [r["is_best"] for r in _records(reference)][killed_at - 1]      # it was a new best
    assert load_checkpoint(exp / "checkpoint.pth.tar")["epoch"] == killed_at - 1   # the older one
    with open(exp / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 2, "lr": 0.0')                              # torn mid-write
    assert release_main(["--config", str(TINY), "--expname", str(exp), "--train", "--resume", "--no-progress"]) == 0
    assert _records(exp) == _records(reference)
    best, expected = load_checkpoint(exp / "checkpoint_best.pth.tar"), load_checkpoint(reference / "checkpoint_best.pth.tar")
    assert best["epoch"] == expected["epoch"] and best["best_nme"] == expected["best_nme"]
    for key, value in expected["state_dict"].items():
        assert torch.equal(best["state_dict"][key], value), key


@pytest.mark.parametrize("damage", ["rng", "state_dict", "optimizer", "backbone"])
def test_resume_from_a_damaged_checkpoint_is_a_named_error(reference, tmp_path, capsys, damage):
    from lgrn.checkpoint import save_checkpoint

    exp = tmp_path / "exp"
    exp.mkdir()
    state = load_checkpoint(reference / "checkpoint.pth.tar")
    if damage == "backbone":        # a checkpoint of another architecture
        state["state_dict"] = {k.replace("backbone.", "trunk."): v for k, v in state["state_dict"].items()}
    else:
        del state[damage]
    save_checkpoint(exp / "checkpoint.pth.tar", state)
    code = release_main(["--config", str(TINY), "--expname", str(exp), "--train", "--resume", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "checkpoint.pth.tar" in err and "Traceback" not in err
    assert (f"the checkpoint has no {damage}" in err) if damage != "backbone" else ("missing keys" in err)


def test_best_checkpoint_keeps_weights_and_metrics_only_and_cannot_be_resumed(reference, tmp_path, capsys):
    """The resume state (optimizer, scheduler, rng, ...) lives in checkpoint.pth.tar alone; --resume from
    checkpoint_best.pth.tar is a named error, not a traceback."""
    best, latest = load_checkpoint(reference / "checkpoint_best.pth.tar"), load_checkpoint(reference / "checkpoint.pth.tar")
    assert {"optimizer", "scheduler", "rng", "iteration", "epoch_sums"}.isdisjoint(best)
    assert {"epoch", "state_dict", "config", "scheme", "best_nme", "selection"} <= set(best)
    assert {"optimizer", "scheduler", "rng"} <= set(latest)
    code = release_main(["--config", str(TINY), "--expname", str(tmp_path / "exp"), "--train", "--resume",
                         "--load_path", str(reference / "checkpoint_best.pth.tar"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "checkpoint_best.pth.tar" in err and "needs the latest checkpoint (checkpoint.pth.tar)" in err
    assert "Traceback" not in err
