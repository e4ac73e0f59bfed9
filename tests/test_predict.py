"""`lgrn predict` on a folder (mixed formats, an unreadable file, a boxes file), a single image and a short
generated video; the boxes-file reader; and the One Euro filter against a noisy synthetic track."""
from __future__ import annotations

import csv
import json
import math

import cv2
import numpy as np
import pytest

from lgrn.cli.predict import main
from lgrn.predict import read_boxes_file
from lgrn.smoothing import OneEuroFilter, jitter


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(small_checkpoint):
    return small_checkpoint


@pytest.fixture(scope="module")
def face(shared_data):
    return cv2.imread(str(shared_data / "300w" / "lfpw" / "trainset" / "image_0002.png"))


def test_predict_folder(checkpoint, face, tmp_path, capsys):
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    cv2.imwrite(str(folder / "a.jpg"), face)
    cv2.imwrite(str(folder / "nested" / "gray.png"), cv2.cvtColor(face, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "nested" / "rgba.png"), cv2.cvtColor(face, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(folder / "deep16.png"), face.astype(np.uint16) * 257)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    (folder / "notes.txt").write_text("not an image, not listed")
    out = tmp_path / "out"
    assert main([str(folder), "--checkpoint", str(checkpoint), "--out", str(out), "--no-progress"]) == 0
    data = json.loads((out / "landmarks.json").read_text())
    assert data["scheme"] == "wflw98" and data["num_landmarks"] == 98
    names = {r["image"] for r in data["faces"]}
    assert names == {"a.jpg", "nested/gray.png", "nested/rgba.png", "deep16.png"}   # one face found in each
    for record in data["faces"]:
        assert len(record["box"]) == 4 and np.array(record["landmarks"]).shape == (98, 2)
    with open(out / "landmarks.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:6] == ["image", "face", "box_x1", "box_y1", "box_x2", "box_y2"] and len(rows[0]) == 6 + 196
    assert len(rows) == 1 + len(data["faces"])
    first = next(r for r in data["faces"] if r["image"] == rows[1][0] and r["face"] == int(rows[1][1]))
    assert float(rows[1][6]) == pytest.approx(first["landmarks"][0][0])
    for name in ("a.jpg", "nested/gray.png", "nested/rgba.png", "deep16.png"):
        annotated = cv2.imread(str(out / "annotated" / name))
        assert annotated is not None and annotated.shape[:2] == face.shape[:2]
    summary = json.loads((out / "summary.json").read_text())
    assert [u["file"] for u in summary["unreadable"]] == [str(folder / "broken.jpg")]
    assert summary["images"] == 4
    assert "broken.jpg" in capsys.readouterr().out

    # --boxes skips detection: the given boxes come back, images without an entry have no face
    boxes_file = tmp_path / "boxes.csv"
    boxes_file.write_text("image,x1,y1,x2,y2\na.jpg,80,120,220,270\na.jpg,10,10,60,60\n")
    out2 = tmp_path / "out2"
    assert main([str(folder), "--checkpoint", str(checkpoint), "--out", str(out2), "--boxes", str(boxes_file),
                 "--no-progress", "--no-annotate"]) == 0
    faces = json.loads((out2 / "landmarks.json").read_text())["faces"]
    assert [(f["image"], f["box"]) for f in faces] == [("a.jpg", [80, 120, 220, 270]), ("a.jpg", [10, 10, 60, 60])]
    assert not (out2 / "annotated").exists()


def test_single_unreadable_image_is_an_error(checkpoint, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG but not really")
    assert main([str(bad), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")]) == 1
    assert str(bad) in capsys.readouterr().err
    # other bad input: a missing checkpoint, a malformed boxes file
    assert main([str(bad), "--checkpoint", str(tmp_path / "none.pth"), "--out", str(tmp_path / "o")]) == 1
    assert "none.pth" in capsys.readouterr().err
    (tmp_path / "boxes.csv").write_text("bad.png,1,2,3\n")
    assert main([str(bad), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o"),
                 "--boxes", str(tmp_path / "boxes.csv")]) == 1
    assert "boxes.csv:1: expected 5 fields" in capsys.readouterr().err


def test_predict_video_with_smoothing(checkpoint, face, tmp_path):
    h, w = face.shape[:2]
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
    rng = np.random.default_rng(0)
    for _ in range(8):   # a shaky camera: random sub-pixel shifts
        writer.write(cv2.warpAffine(face, np.float32([[1, 0, rng.normal(0, 1.5)], [0, 1, rng.normal(0, 1.5)]]), (w, h)))
    writer.release()
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"*": [[80, 120, 220, 270]]}))
    out = tmp_path / "out"
    assert main([str(video), "--checkpoint", str(checkpoint), "--out", str(out), "--no-progress"]) == 0
    data = json.loads((out / "landmarks.json").read_text())
    assert sorted({r["frame"] for r in data["faces"]}) == list(range(8))
    assert {r["track"] for r in data["faces"]} == {0}          # one face, one track
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 8 and summary["frame_pairs"] == 7
    assert summary["jitter_smoothed_px"] < summary["jitter_raw_px"]
    capture = cv2.VideoCapture(str(out / "clip_annotated.mp4"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 8
    # smoothing off: both jitter figures are the raw one; --boxes with "*" applies to every frame
    out2 = tmp_path / "out2"
    assert main([str(video), "--checkpoint", str(checkpoint), "--out", str(out2), "--no-progress", "--no-smooth",
                 "--no-annotate", "--boxes", str(boxes)]) == 0
    summary2 = json.loads((out2 / "summary.json").read_text())
    assert summary2["jitter_smoothed_px"] == summary2["jitter_raw_px"] > 0
    faces = json.loads((out2 / "landmarks.json").read_text())["faces"]
    assert len(faces) == 8 and all(f["box"] == [80, 120, 220, 270] for f in faces)


def test_read_boxes_file_formats(tmp_path):
    (tmp_path / "b.json").write_text(json.dumps({"x.jpg": [1, 2, 3, 4], "y.jpg": [[0, 0, 5, 5], [1, 1, 9, 9]]}))
    boxes = read_boxes_file(tmp_path / "b.json")
    assert boxes["x.jpg"].tolist() == [[1, 2, 3, 4]] and boxes["y.jpg"].shape == (2, 4)
    (tmp_path / "own.json").write_text(json.dumps({"faces": [{"image": "z.png", "face": 0, "box": [0, 0, 2, 2]}]}))
    assert read_boxes_file(tmp_path / "own.json")["z.png"].tolist() == [[0, 0, 2, 2]]
    (tmp_path / "b.txt").write_text("p.jpg 0 0 10 10\np.jpg 0 0 abc 10\n")
    with pytest.raises(ValueError, match=r"b.txt:2: box values must be numbers"):
        read_boxes_file(tmp_path / "b.txt")
    (tmp_path / "c.csv").write_text("q.jpg,0,0,10\n")
    with pytest.raises(ValueError, match=r"c.csv:1: expected 5 fields"):
        read_boxes_file(tmp_path / "c.csv")


def test_one_euro_single_step_by_hand():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    assert f(np.array([[0.0, 0.0]]), 0.0).tolist() == [[0.0, 0.0]]    # the first sample passes unchanged
    # alpha = 1 / (1 + tau / dt), tau = 1 / (2 pi f_c): f_c = 1 Hz, dt = 1/30 s
    alpha = 1.0 / (1.0 + (1.0 / (2 * math.pi)) * 30.0)
    np.testing.assert_allclose(f(np.array([[1.0, 2.0]]), 1 / 30), [[alpha, 2 * alpha]])
    with pytest.raises(ValueError, match="time must increase"):
        f(np.array([[1.0, 2.0]]), 1 / 30)


def test_one_euro_reduces_jitter_on_a_noisy_track():
    rng = np.random.default_rng(0)
    fps, side = 30.0, 200.0
    t = np.arange(240) / fps
    base = rng.uniform(50, 150, (20, 2))
    shift = np.zeros((len(t), 2))
    moving = (t >= 3) & (t < 5)
    shift[moving, 0] = 0.5 * side * (t[moving] - 3)        # a pan at half a face per second
    shift[t >= 5, 0] = side
    truth = base[None] + shift[:, None]
    noisy = truth + rng.normal(0, 0.01 * side, truth.shape)  # detector/network noise: 1% of the face
    f = OneEuroFilter()
    smoothed = np.stack([f(points, time, side) for points, time in zip(noisy, t)])
    still = (t < 3) | (t > 5.5)
    raw_still = jitter(noisy[t < 3])
    assert jitter(smoothed[t < 3]) < raw_still / 3                        # at rest: far less jitter
    error = lambda track: np.linalg.norm(track - truth, axis=-1)          # noqa: E731
    assert error(smoothed)[still].mean() < 0.6 * error(noisy)[still].mean()   # and closer to the truth
    assert error(smoothed)[moving].max() < 0.06 * side                    # the pan is followed with little lag
