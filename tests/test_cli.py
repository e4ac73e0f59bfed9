"""The release's command lines, verbatim, on the real WFLW sample prepared by `lgrn prepare` (official
layout copied into tmp_path), with `--set` overrides for a small model; `lgrn train` / `lgrn evaluate`;
the demo in its quick form."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from lgrn import metrics
from lgrn.checkpoint import load_checkpoint, load_model
from lgrn.cli import main as lgrn_main
from lgrn.cli.prepare import main as prepare_main
from lgrn.cli.release import main as release_main
from lgrn.landmarks import get_scheme

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--set", "common.crop_size=128", "--set", "structure.backbone_name=mobilenetv2",
         "--set", "train_param.batch_size=4", "--set", "train_param.workers=0", "--set", "test_param.workers=0",
         "--set", "train_param.scheduler.epochs=2", "--set", "train_param.max_iters_per_epoch=2",
         "--set", "train_param.device=cpu", "--set", "train_param.seed=0", "--no-progress"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def wflw_workdir(shared_data, tmp_path_factory):
    """tmp dir holding the release layout: experiments/WLFW/*.yaml and data/WFLW prepared (128 px) from
    the official WFLW sample (the test list doubles as the training list)."""
    work = tmp_path_factory.mktemp("wflw")
    official = work / "WFLW"
    lists = official / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
    lists.mkdir(parents=True)
    shutil.copytree(shared_data / "wflw" / "WFLW_images", official / "WFLW_images")
    for split in ("train", "test"):
        shutil.copy(shared_data / "wflw" / "list_98pt_rect_attr_test.txt", lists / f"list_98pt_rect_attr_{split}.txt")
    assert prepare_main(["wflw", "--root", str(official), "--out", str(work / "data" / "WFLW"), "--size", "128",
                         "--no-progress"]) == 0
    shutil.copytree(REPO / "experiments" / "WLFW", work / "experiments" / "WLFW")
    return work


@pytest.fixture(scope="module")
def release_runs(wflw_workdir):
    """The three release commands (train L-GRN, train FC, evaluate the best L-GRN) and --eval_ckpts,
    run in the work dir as a user would."""
    previous = os.getcwd()
    os.chdir(wflw_workdir)
    try:
        codes = {
            "train": release_main(["--config", "experiments/WLFW/config_resnet.yaml", "--expname",
                                   "experiments/WLFW/exp_resnet", "--train", "--keep-snapshots", *SMALL]),
            "train_fc": release_main(["--config", "experiments/WLFW/config_resnet_fc.yaml", "--expname",
                                      "experiments/WLFW/exp_resnet_fc", "--train", *SMALL]),
            "evaluate": release_main(["--config", "experiments/WLFW/config_resnet.yaml", "--expname",
                                      "experiments/WLFW/exp_resnet/", "--load_path",
                                      "experiments/WLFW/exp_resnet/checkpoint_best.pth.tar", "--evaluate",
                                      "--visualize", *SMALL]),
            "eval_ckpts": release_main(["--config", "experiments/WLFW/config_resnet.yaml", "--expname",
                                        "experiments/WLFW/exp_resnet", "--eval_ckpts", *SMALL]),
        }
    finally:
        os.chdir(previous)
    return wflw_workdir, codes


def test_release_commands_run_and_write_the_release_files(release_runs):
    work, codes = release_runs
    assert codes == {"train": 0, "train_fc": 0, "evaluate": 0, "eval_ckpts": 0}
    for name in ("exp_resnet", "exp_resnet_fc"):
        exp = work / "experiments" / "WLFW" / name
        for file in ("checkpoint.pth.tar", "checkpoint_best.pth.tar", "nme.txt", "lmk.txt", "analysis.json",
                     "analysis.md", "ced.png", "metrics.jsonl", "config.yaml", "train.log"):
            assert (exp / file).is_file(), f"{name}/{file}"
    state = load_checkpoint(work / "experiments/WLFW/exp_resnet_fc/checkpoint.pth.tar")
    assert state["config"]["structure"]["predictor_name"] == "FCPredictor" and state["epoch"] == 2


def test_evaluate_reports_subsets_original_pixels_and_nested_visualisations(release_runs):
    work, _ = release_runs
    exp = work / "experiments" / "WLFW" / "exp_resnet"
    scheme = get_scheme("wflw98")
    test_list = (work / "data/WFLW/test/test_98pt.txt").read_text().splitlines()
    names = [line.split()[-1] for line in test_list]
    truth = np.array([[float(v) for v in line.split()[:196]] for line in test_list]).reshape(-1, 98, 2)
    lmk = [line.split() for line in (exp / "lmk.txt").read_text().splitlines()]
    assert [r[-1] for r in lmk] == names
    predicted = np.array([[float(v) for v in r[:-1]] for r in lmk]).reshape(-1, 98, 2)
    report = json.loads((exp / "analysis.json").read_text())
    assert report["overall"]["nme"] == pytest.approx(metrics.nme(predicted, truth, scheme).mean(), rel=1e-5)
    assert report["checkpoint"] == "experiments/WLFW/exp_resnet/checkpoint_best.pth.tar"
    assert "test set" in report["selection"] and report["epoch"] == 2
    flags = np.array([[int(v) for v in line.split()[:6]] for line in
                      (work / "data/WFLW/test/test_98pt_attr.txt").read_text().splitlines()])
    for column, subset in enumerate(scheme.subsets):
        assert report["subsets"][subset]["count"] == flags[:, column].sum()
    # Predictions in original-image pixels: mapping them through the prepare crop gives lmk.txt again.
    crops = {json.loads(line)["name"]: np.array(json.loads(line)["matrix"])
             for line in (work / "data/WFLW/test/test_98pt_crops.jsonl").read_text().splitlines()}
    original = [line.split() for line in (exp / "lmk_original.txt").read_text().splitlines()]
    for row, pred in zip(original, predicted, strict=True):
        points = np.array([float(v) for v in row[:-1]]).reshape(98, 2)
        m = crops[row[-1]]
        np.testing.assert_allclose(points @ m[:, :2].T + m[:, 2], pred, atol=1e-3)
    image = cv2.imread(str(exp / "vis_result" / names[0]))
    assert image is not None and image.shape == (128, 128, 3)
    assert len(list((exp / "vis_result").rglob("*.jpg"))) == len(names)


def test_eval_ckpts_lists_every_snapshot(release_runs):
    work, _ = release_runs
    rows = (work / "experiments/WLFW/exp_resnet/ckpts.csv").read_text().splitlines()
    assert rows[0] == "Name,ION,IPN,FR,AUC"
    assert [r.split(",")[0] for r in rows[1:]] == ["checkpoint_2.pth.tar", "checkpoint.pth.tar",
                                                   "checkpoint_best.pth.tar"]
    ion = [float(r.split(",")[1]) for r in rows[1:]]
    # One evaluation in 2 epochs: snapshot 2, latest and best are the same weights as the --evaluate run.
    report = json.loads((work / "experiments/WLFW/exp_resnet/analysis.json").read_text())
    assert ion == pytest.approx([report["overall"]["nme"]] * 3, rel=1e-9)


def test_evaluate_without_a_checkpoint_is_an_error(wflw_workdir, monkeypatch, capsys):
    monkeypatch.chdir(wflw_workdir)
    code = release_main(["--config", "experiments/WLFW/config_resnet.yaml", "--expname", "x", "--evaluate"])
    assert code == 2 and "--load_path" in capsys.readouterr().err
    code = release_main(["--config", "experiments/WLFW/config_resnet.yaml", "--expname", "x", "--evaluate",
                         "--load_path", "missing.pth.tar"])
    assert code == 2 and "missing.pth.tar" in capsys.readouterr().err
    code = release_main(["--config", "experiments/WLFW/config_resnet.yaml", "--expname", "x", "--train",
                         "--set", "train_param.batch_sise=4"])
    assert code == 2 and "batch_sise" in capsys.readouterr().err


def test_lgrn_train_and_evaluate_with_overrides(release_runs, monkeypatch):
    work, _ = release_runs
    monkeypatch.chdir(work)
    code = lgrn_main(["train", "--config", "experiments/WLFW/config_resnet.yaml", "--expname", "runs/a/b/c", *SMALL,
                      "--set", "train_param.scheduler.epochs=1", "--set", "train_param.cache=true", "--load_path",
                      "experiments/WLFW/exp_resnet/checkpoint_best.pth.tar"])
    assert code == 0 and (work / "runs/a/b/c/checkpoint_best.pth.tar").is_file()
    assert any((work / "data/WFLW/train/.lgrn_cache").iterdir())     # decoded-image cache built and used
    # Evaluation without --config takes the data settings from the checkpoint.
    code = lgrn_main(["evaluate", "--expname", "runs/eval", "--load_path", "runs/a/b/c/checkpoint_best.pth.tar",
                      "--no-progress"])
    assert code == 0
    report = json.loads((work / "runs/eval/analysis.json").read_text())
    assert report["overall"]["count"] == 14 and report["model"] == "BaseGCNPredictor"


def test_lgrn_evaluate_accepts_an_onnx_model(release_runs, monkeypatch):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'lgrn[onnx]')")
    from lgrn import export

    work, _ = release_runs
    monkeypatch.chdir(work)
    onnx_path = work / "runs" / "model.onnx"
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    export.export_onnx(load_model("experiments/WLFW/exp_resnet/checkpoint_best.pth.tar"), onnx_path)
    code = lgrn_main(["evaluate", "--config", "experiments/WLFW/config_resnet.yaml", "--expname", "runs/onnx",
                      "--load_path", str(onnx_path), *SMALL])
    assert code == 0
    onnx_nme = json.loads((work / "runs/onnx/analysis.json").read_text())["overall"]["nme"]
    torch_nme = json.loads((work / "experiments/WLFW/exp_resnet/analysis.json").read_text())["overall"]["nme"]
    assert onnx_nme == pytest.approx(torch_nme, rel=1e-3)


def test_demo_quick(tmp_path):
    from lgrn.cli.demo import main as demo_main

    out = tmp_path / "demo"
    assert demo_main(["--out", str(out), "--quick", "--no-progress", "--set", "common.crop_size=64"]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["L-GRN", "FC"]
    for row in rows:
        assert 0 < row["nme"] < 5 and row["parameters"] > 0 and row["ms_per_face"] > 0
        assert np.isfinite(row["nme_visible"]) and np.isfinite(row["nme_occluded"])
    for file in ("results.md", "ced.png", "predictions.png", "lgrn/checkpoint_best.pth.tar", "fc/analysis.json"):
        assert (out / file).is_file(), file
    # the shipped model on the real samples beside the checkout: faces found, the annotated ones close
    real = json.loads((out / "real_faces.json").read_text())
    assert real["images"] >= 10 and real["faces"] >= real["images"]
    assert real["annotated_faces_found"] >= 8 and real["mean_nme_inter_ocular"] < 0.08
    assert cv2.imread(str(out / "real_faces.png")).shape[1] == 5 * 256


def test_evaluate_help_lists_no_training_flags_and_main_keeps_every_release_flag(capsys):
    with pytest.raises(SystemExit):
        lgrn_main(["evaluate", "--help"])
    evaluate_help = capsys.readouterr().out
    for flag in ("--resume", "--train", "--keep-snapshots", "--record-indices"):
        assert flag not in evaluate_help
    for flag in ("--load_path", "--eval_ckpts", "--crops", "--images-root", "--visualize", "--set", "--no-progress"):
        assert flag in evaluate_help
    with pytest.raises(SystemExit):
        lgrn_main(["main", "--help"])
    main_help = capsys.readouterr().out
    for flag in ("--config", "--expname", "--train", "--evaluate", "--eval_ckpts", "--load_path", "--resume",
                 "--visualize", "--set", "--keep-snapshots", "--record-indices", "--no-progress"):
        assert flag in main_help
    with pytest.raises(SystemExit) as exited:      # a training flag is an argparse error (status 2)
        lgrn_main(["evaluate", "--expname", "x", "--resume"])
    assert exited.value.code == 2 and "unrecognized arguments: --resume" in capsys.readouterr().err
