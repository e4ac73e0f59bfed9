"""Inputs that hurt, fed through the public commands: an image of 400 megapixels in a few hundred KB, a
FIFO, broken and looping symlinks, and a model whose weights are NaN. Each gives a clear error (or is
listed as unreadable) instead of a hang, gigabytes of memory or invalid output files."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
import torch

from lgrn.checkpoint import load_checkpoint, save_checkpoint
from lgrn.cli.export import main as export_main
from lgrn.cli.predict import main as predict_main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_huge_image_is_refused_from_its_header(small_checkpoint, tmp_path, capsys):
    huge = tmp_path / "huge.png"
    cv2.imwrite(str(huge), np.zeros((20000, 20000), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert huge.stat().st_size < 2 ** 20
    assert predict_main([str(huge), "--checkpoint", str(small_checkpoint), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert f"image {huge} is 400000000 pixels, over the limit of 40000000 pixels" in err


def test_fifo_and_broken_links_are_named_not_hung(small_checkpoint, face_image, tmp_path, capsys):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    assert predict_main([str(fifo), "--checkpoint", str(small_checkpoint), "--out", str(tmp_path / "o")]) == 1
    assert f"cannot read image {fifo}: not a regular file" in capsys.readouterr().err
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "face.jpg"), face_image)
    os.mkfifo(folder / "pipe.jpg")
    (folder / "broken.jpg").symlink_to(folder / "gone.jpg")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    out = tmp_path / "out"
    assert predict_main([str(folder), "--checkpoint", str(small_checkpoint), "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(os.path.basename(u["file"]) for u in summary["unreadable"]) == ["broken.jpg", "loop.jpg", "pipe.jpg"]
    assert summary["images"] == 1


@pytest.fixture
def face_image(shared_data):
    return cv2.imread(str(shared_data / "300w" / "lfpw" / "trainset" / "image_0002.png"))


def test_nan_model_writes_nothing_and_export_refuses_it(small_checkpoint, face_image, tmp_path, capsys):
    state = load_checkpoint(small_checkpoint)
    first = next(k for k, v in state["state_dict"].items() if v.is_floating_point() and v.ndim == 4)
    state["state_dict"][first] = torch.full_like(state["state_dict"][first], float("nan"))
    broken = tmp_path / "nan.pth"
    save_checkpoint(broken, state)
    image = tmp_path / "face.jpg"
    cv2.imwrite(str(image), face_image)
    out = tmp_path / "out"
    assert predict_main([str(image), "--checkpoint", str(broken), "--out", str(out), "--boxes",
                         _boxes(tmp_path)]) == 1
    assert "non-finite landmarks" in capsys.readouterr().err
    assert not (out / "landmarks.json").exists()
    assert export_main(["--checkpoint", str(broken), "--onnx", str(tmp_path / "nan.onnx")]) == 1
    err = capsys.readouterr().err
    assert "non-finite landmarks" in err and "parity" not in err


def _boxes(folder) -> str:
    path = folder / "boxes.csv"
    path.write_text("*,80,120,220,270\n")
    return str(path)


def test_ctrl_c_keeps_the_finished_images(small_checkpoint, face_image, tmp_path, monkeypatch, capsys):
    """Ctrl-C in the middle of a folder: the images done before it are written, the exit status is 130."""
    from lgrn import predict as predict_module

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(40):                                     # three chunks of 16
        cv2.imwrite(str(folder / f"{i:02d}.jpg"), face_image)
    real = predict_module.FaceAligner.predict
    calls = {"n": 0}

    def interrupted_on_third_chunk(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(predict_module.FaceAligner, "predict", interrupted_on_third_chunk)
    out = tmp_path / "out"
    code = predict_main([str(folder), "--checkpoint", str(small_checkpoint), "--out", str(out), "--no-progress",
                         "--no-annotate", "--boxes", _boxes(tmp_path)])
    assert code == 130
    faces = json.loads((out / "landmarks.json").read_text())["faces"]
    assert sorted(f["image"] for f in faces) == [f"{i:02d}.jpg" for i in range(32)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] == {"images_done": 32, "images_listed": 40} and summary["images"] == 32
    assert "interrupted: the 32 image(s) finished before Ctrl-C are written above (of 40 listed)" in \
        capsys.readouterr().err
