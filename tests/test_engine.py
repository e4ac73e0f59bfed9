"""Engine: LR schedule, samplers, atomic writes and checkpoints, a short synthetic training that must
learn, evaluation reports that agree with lgrn.metrics recomputed from lmk.txt, the fast path."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lgrn import load_config, metrics
from lgrn.checkpoint import load_checkpoint
from lgrn.engine.distributed import DistContext, EpochSampler, shard_indices
from lgrn.engine.evaluate import evaluate
from lgrn.engine.report import write_reports
from lgrn.geometry import apply_affines, invert_affines
from lgrn.atomic import atomic_write
from lgrn.atomic import write_text_atomic
from lgrn.engine.schedule import lr_per_epoch
from lgrn.bench.throughput import train_step_throughput
from lgrn.engine.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "experiments" / "synthetic" / "tiny.yaml"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- schedule ----------------------------------------------------------------------------------------

def test_lr_schedule_decays_after_the_milestone_epochs_complete():
    tp = load_config(TINY, ["train_param.scheduler.milestones=[2, 4]", "train_param.scheduler.epochs=6"])["train_param"]
    assert lr_per_epoch(tp) == pytest.approx([0.01, 0.01, 0.002, 0.002, 0.0004, 0.0004])
    tp["scheduler"]["release_early_decay"] = True
    assert lr_per_epoch(tp) == pytest.approx([0.01, 0.002, 0.002, 0.0004, 0.0004, 0.0004])


def test_release_schedule_200_350_and_the_early_variant():
    tp = load_config(REPO / "experiments" / "WLFW" / "config_resnet.yaml")["train_param"]
    lrs = lr_per_epoch(tp)
    assert len(lrs) == 500
    assert lrs[199] == pytest.approx(0.01) and lrs[200] == pytest.approx(0.002)
    assert lrs[349] == pytest.approx(0.002) and lrs[350] == pytest.approx(0.0004)
    tp["scheduler"]["release_early_decay"] = True
    early = lr_per_epoch(tp)
    assert early[198] == pytest.approx(0.01) and early[199] == pytest.approx(0.002)
    assert early[348] == pytest.approx(0.002) and early[349] == pytest.approx(0.0004)


# -- samplers ----------------------------------------------------------------------------------------

def test_epoch_sampler_is_a_function_of_seed_and_epoch_and_skips_exactly():
    a, b = EpochSampler(20, seed=3), EpochSampler(20, seed=3)
    a.set_epoch(1), b.set_epoch(1)
    first = [i for _, i in a]
    assert first == [i for _, i in b] and sorted(first) == list(range(20))
    a.set_epoch(2)
    assert [i for _, i in a] != first
    b.set_epoch(1)
    b.skip(7)
    assert [i for _, i in b] == first[7:]
    assert all(epoch == 1 for epoch, _ in b)   # the epoch travels with every index


def test_distributed_sampler_shards_cover_each_sample_once_and_weighted_draws_follow_weights():
    ranks = [EpochSampler(24, seed=0, rank=r, world_size=2) for r in range(2)]
    seen = sorted(i for s in ranks for _, i in s)
    assert seen == list(range(24))
    weights = np.array([0.0] * 10 + [1.0] * 10)
    drawn = [i for r in range(2) for _, i in EpochSampler(20, seed=0, rank=r, world_size=2, weights=weights,
                                                          num_draws=40)]
    assert len(drawn) == 40 and min(drawn) >= 10            # zero-weight samples never drawn
    assert sorted(i for r in range(3) for i in shard_indices(10, DistContext(rank=r, world_size=3))) == list(range(10))


# -- atomic files and checkpoints --------------------------------------------------------------------

def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "nme.txt"
    write_text_atomic(path, "old\n")

    def crash_half_way(handle) -> None:
        handle.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, crash_half_way)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["nme.txt"]   # no temp file left behind


def test_crash_while_saving_a_checkpoint_leaves_the_previous_one_loadable(tmp_path, monkeypatch):
    import lgrn.checkpoint as checkpoint_module

    config = load_config(TINY, ["train_param.scheduler.epochs=1", "train_param.max_iters_per_epoch=1"])
    trainer = Trainer(config, tmp_path / "exp", progress=False)
    trainer.fit()
    latest = tmp_path / "exp" / "checkpoint.pth.tar"
    before = load_checkpoint(latest)

    def torn_save(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 torn")        # a partial zip header, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        trainer._save(5)
    monkeypatch.undo()
    after = load_checkpoint(latest)
    assert after["epoch"] == before["epoch"] == 1
    assert all(torch.equal(after["state_dict"][k], v) for k, v in before["state_dict"].items())


def test_subsets_follow_the_attribute_flags_and_300w_gets_full():
    from lgrn.engine.report import subset_masks
    from lgrn.landmarks import get_scheme

    flags = [{"common": 1, "challenging": 0}, {"common": 0, "challenging": 1}, {"common": 1, "challenging": 0}]
    masks = subset_masks(flags, get_scheme("300w68"))
    assert list(masks) == ["common", "challenging", "full"]
    assert masks["common"].tolist() == [True, False, True] and masks["full"].all()
    wflw = subset_masks([{"pose": 1, "blur": 1}, {"pose": 0, "blur": 1}], get_scheme("wflw98"))
    assert list(wflw) == ["pose", "blur"] and wflw["blur"].tolist() == [True, True]   # non-exclusive


def test_affine_round_trip():
    rng = np.random.default_rng(0)
    matrices = np.concatenate([rng.normal(size=(5, 2, 2)) + 3 * np.eye(2), rng.normal(size=(5, 2, 1))], axis=2)
    points = rng.normal(size=(5, 7, 2)) * 50
    back = apply_affines(apply_affines(points, matrices), invert_affines(matrices))
    np.testing.assert_allclose(back, points, atol=1e-9)


# -- a short training on synthetic faces ---------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny L-GRN trained for 3 epochs; also the NME of the untrained model on the same test set."""
    out = tmp_path_factory.mktemp("train")
    config = load_config(TINY, ["train_param.synthetic.num_images=48", "train_param.optimizer.kwargs.lr=0.03"])
    trainer = Trainer(config, out / "exp", keep_snapshots=True, progress=False)
    before = evaluate(trainer.model, trainer.test_set, trainer.scheme, trainer.device, 16, progress=False)
    summary = trainer.fit()
    return out / "exp", trainer, before, summary


def test_short_training_lowers_the_loss_and_the_nme(trained):
    exp, trainer, before, summary = trained
    history = summary["history"]
    assert [r["epoch"] for r in history] == [0, 1, 2]
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    after = [r["eval_nme"] for r in history if "eval_nme" in r]
    assert after[-1] < 0.6 * before.nme
    # The lr the epochs trained with follows the schedule (milestones [2, 3]).
    assert [r["lr"] for r in history] == pytest.approx([0.03, 0.03, 0.006])


def test_checkpoints_hold_the_documented_keys_and_load_weights_only(trained):
    exp, trainer, _, summary = trained
    names = sorted(p.name for p in exp.glob("checkpoint*.pth.tar"))
    assert names == ["checkpoint.pth.tar", "checkpoint_1.pth.tar", "checkpoint_2.pth.tar", "checkpoint_3.pth.tar",
                     "checkpoint_best.pth.tar"]
    state = load_checkpoint(exp / "checkpoint.pth.tar")
    for key in ("epoch", "optimizer", "state_dict", "config", "scheme", "scheduler", "rng", "lgrn_version",
                "best_nme"):
        assert key in state
    assert state["epoch"] == 3 and state["iteration"] == 0
    assert state["best_nme"] == pytest.approx(summary["best_nme"])
    best = load_checkpoint(exp / "checkpoint_best.pth.tar")
    evals = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]
    best_epoch = min((r for r in evals if "eval_nme" in r), key=lambda r: r["eval_nme"])["epoch"]
    assert best["epoch"] == best_epoch + 1


def test_report_numbers_agree_with_metrics_recomputed_from_lmk_txt(trained):
    exp, trainer, _, _ = trained
    scheme = trainer.scheme
    samples = trainer.test_set.samples
    rows = [line.split() for line in (exp / "lmk.txt").read_text().splitlines()]
    assert [r[-1] for r in rows] == [s.name for s in samples]            # annotation order
    predicted = np.array([[float(v) for v in r[:-1]] for r in rows]).reshape(len(rows), scheme.num_landmarks, 2)
    truth = np.stack([s.landmarks for s in samples])
    assert not np.allclose(predicted, truth, atol=0.5)                   # predictions, not the ground truth
    nmes = metrics.nme(predicted, truth, scheme)
    listed = [float(line.split()[0]) for line in (exp / "nme.txt").read_text().splitlines()]
    np.testing.assert_allclose(listed, nmes, rtol=1e-5)
    report = json.loads((exp / "analysis.json").read_text())
    assert report["overall"]["nme"] == pytest.approx(nmes.mean(), rel=1e-5)
    assert report["overall"]["fr"] == pytest.approx(metrics.failure_rate(nmes))
    assert report["overall"]["auc"] == pytest.approx(metrics.auc(nmes), abs=1e-6)
    assert report["checkpoint"].endswith("checkpoint_best.pth.tar")
    assert "test set" in report["selection"]
    occluded = report["visibility"]["occluded_points"]
    assert occluded > 0 and np.isfinite(report["visibility"]["occluded_nme"])
    assert (exp / "ced.png").read_bytes()[:4] == b"\x89PNG"
    assert "| all |" in (exp / "analysis.md").read_text()
    assert report["norm"] == "inter_ocular" and report["overall"]["nme_io"] == pytest.approx(nmes.mean(), rel=1e-5)


def test_inter_pupil_norm_drives_the_report(trained, tmp_path):
    exp, trainer, _, _ = trained
    scheme = trainer.scheme
    result = evaluate(trainer.model, trainer.test_set, scheme, torch.device("cpu"), 8, progress=False)
    report = write_reports(result, tmp_path / "ip", scheme, norm="inter_pupil")
    truth = np.stack([s.landmarks for s in trainer.test_set.samples])
    nmes_ip = metrics.nme(result.predictions, truth, scheme, norm="inter_pupil")
    nmes_io = metrics.nme(result.predictions, truth, scheme, norm="inter_ocular")
    assert not np.allclose(nmes_ip, nmes_io)
    assert report["norm"] == "inter_pupil"
    assert report["overall"]["nme"] == pytest.approx(nmes_ip.mean(), rel=1e-5)
    assert report["overall"]["fr"] == pytest.approx(metrics.failure_rate(nmes_ip))
    assert report["overall"]["nme_io"] == pytest.approx(nmes_io.mean(), rel=1e-5)
    listed = [float(line.split()[0]) for line in (tmp_path / "ip" / "nme.txt").read_text().splitlines()]
    np.testing.assert_allclose(listed, nmes_io, rtol=1e-5)          # nme.txt stays the release's IO NME
    assert "inter-pupil distance" in (tmp_path / "ip" / "analysis.md").read_text()
    with pytest.raises(ValueError, match="test_param.norm must be one of"):
        write_reports(result, tmp_path / "bad", scheme, norm="box")


def test_validation_split_selects_the_best_and_the_test_report_comes_at_the_end(tmp_path):
    config = load_config(TINY, ["train_param.validation.fraction=0.25", "train_param.scheduler.epochs=1",
                                "train_param.max_iters_per_epoch=2"])
    trainer = Trainer(config, tmp_path / "exp", progress=False)
    assert trainer.selection == "validation" and len(trainer.data.val_dataset) == 8
    trainer.fit()
    record = json.loads((tmp_path / "exp" / "metrics.jsonl").read_text())
    assert record["eval_set"] == "validation" and record["iterations"] == 2
    report = json.loads((tmp_path / "exp" / "analysis.json").read_text())
    assert "validation split" in report["selection"]
    assert report["overall"]["count"] == len(trainer.test_set)


def test_fast_path_and_gpu_side_augmentation_train(tmp_path):
    overrides = ["train_param.amp=bf16", "train_param.channels_last=true", "train_param.augment_on=gpu",
                 "train_param.scheduler.epochs=1", "train_param.max_iters_per_epoch=2"]
    trainer = Trainer(load_config(TINY, overrides), tmp_path / "exp", progress=False)
    summary = trainer.fit()
    assert np.isfinite(summary["history"][0]["loss"]) and summary["history"][0]["iterations"] == 2


def test_persistent_workers_and_pdb_sampler_mode_give_the_single_process_results(tmp_path):
    """Augmentation is a function of (seed, epoch, index) even inside persistent DataLoader workers."""
    overrides = ["train_param.scheduler.epochs=2", "train_param.max_iters_per_epoch=2", "train_param.is_pdb=3",
                 "train_param.pdb_mode=sampler", "train_param.snapshot_freq=5"]
    losses = {}
    for workers in (0, 2):
        trainer = Trainer(load_config(TINY, overrides + [f"train_param.workers={workers}"]), tmp_path / f"w{workers}",
                          record_indices=True, progress=False)
        assert trainer.sampler.weights is not None and trainer.sampler.num_draws == trainer.data.num_samples
        losses[workers] = [r["loss"] for r in trainer.fit()["history"]]
        assert (tmp_path / f"w{workers}" / "indices" / "rank0.jsonl").read_text().count("\n") == 4
    assert losses[0] == losses[2] and losses[0][0] != losses[0][1]


def test_train_step_throughput_records():
    config = load_config(TINY)
    for variant in ("fp32", "fast"):
        record = train_step_throughput(config, batch_size=2, steps=1, variant=variant, warmup=1)
        assert record["kind"] == "train" and record["variant"] == variant and record["batch"] == 2
        assert record["images_per_s"] > 0 and record["ms_per_batch"] > 0 and record["peak_mem_mb"] > 0
    with pytest.raises(ValueError, match="variant"):
        train_step_throughput(config, 2, 1, variant="fp16")


def test_no_full_set_without_challenging_faces():
    """300-W common only (no iBUG faces): the report must not call it 'full'."""
    from lgrn.engine.report import subset_masks
    from lgrn.landmarks import get_scheme

    flags = [{"common": 1, "challenging": 0}, {"common": 1, "challenging": 0}]
    masks = subset_masks(flags, get_scheme("300w68"))
    assert "full" not in masks and masks["common"].tolist() == [True, True]
    assert not masks["challenging"].any()


def test_report_occluded_nme_is_the_metrics_definition(trained):
    """analysis.json's visible / occluded NME is lgrn.metrics.visibility_summary (one definition)."""
    exp, trainer, _, _ = trained
    scheme = trainer.scheme
    result = evaluate(trainer.model, trainer.test_set, scheme, torch.device("cpu"), 8, progress=False)
    assert result.visibility is not None and not result.visibility.all()
    expected = metrics.visibility_summary(result.predictions, result.ground_truth, result.visibility, scheme)
    report = json.loads((exp / "analysis.json").read_text())["visibility"]
    split = write_reports(result, exp / "again", scheme)["visibility"]
    assert split["occluded_nme"] == pytest.approx(expected["occluded_nme"], rel=1e-12)
    assert split["visible_nme"] == pytest.approx(expected["visible_nme"], rel=1e-12)
    assert split["occluded_points"] == int((~result.visibility).sum()) == report["occluded_points"]


def test_too_many_workers_warning_is_issued_once(monkeypatch):
    from torch.utils.data import TensorDataset

    from lgrn.engine import runtime

    monkeypatch.setattr(runtime, "_warned_workers", False)
    dataset = TensorDataset(torch.zeros(4, 1))
    with pytest.warns(UserWarning, match="worker processes in total") as caught:
        for _ in range(3):     # one training loader and two evaluations
            runtime.EngineDataLoader(dataset, num_workers=10_000).check_worker_number_rationality()
    assert len([w for w in caught if "worker processes in total" in str(w.message)]) == 1
