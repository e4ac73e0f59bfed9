"""Absurd annotation values, fed through the public readers and `lgrn prepare`: each is lgrn's own named
error (file, line, field) instead of a silent exit 0 with nonsense in the lists."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from lgrn.cli.prepare import main as prepare_main
from lgrn.data.readers import read_pts, read_release_list
from test_readers import make_300w


@pytest.fixture
def listed(tmp_path: Path):
    """A processed list of two real-sized images with 3 landmarks each."""
    root = tmp_path / "Image"
    root.mkdir()
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(root / name), np.full((100, 120, 3), 90, np.uint8))
    cv2.imwrite(str(root / "tiny.png"), np.zeros((1, 1, 3), np.uint8))
    return root


def _write(root: Path, lines: list[str]) -> Path:
    path = root.parent / "list.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("line, message", [
    ("10 20 4_40.5 30 50 60 a.jpg", r"list.txt:2: field 3 \(x of landmark 1\): '4_40.5' is not a number"),
    ("10 20 1e30 30 50 60 a.jpg", r"list.txt:2: field 3 \(x of landmark 1\) = 1e\+30 lies far outside the 120 x 100"),
    ("10 20 -50000 30 50 60 a.jpg", r"list.txt:2: field 3 \(x of landmark 1\) = -50000 lies far outside"),
    ("10000000 20000000 30 30 50 60 a.jpg", r"list.txt:2: field 1 \(x of landmark 0\) = 1e\+07 lies far outside"),
    ("10 20 30 30 50 60 b.jpg", r"list.txt:2: field 7 \(image\): 'b.jpg' is listed twice \(first on line 1\)"),
    ("0 0 0 0 0 0 tiny.png", r"list.txt:2: image: 1 x 1 pixels is too small"),
])
def test_release_list_values(listed, line, message):
    path = _write(listed, ["1 2 3 4 5 6 b.jpg", line])
    with pytest.raises(ValueError, match=message):
        read_release_list(listed, path, 3)


def test_points_outside_the_border_by_less_than_the_image_are_fine(listed):
    # WFLW has landmarks a little outside the image: allowed
    samples = read_release_list(listed, _write(listed, ["-30 -5 125 104 60 50 a.jpg"]), 3)
    assert samples[0].landmarks[1].tolist() == [125, 104]


@pytest.mark.parametrize("n_points, message", [("67", "field n_points: 67, but this dataset has 68 landmarks"),
                                               ("100000000000", "field n_points: 100000000000 is not a landmark count"),
                                               ("-1", "field n_points: -1 is not a landmark count")])
def test_pts_point_counts_through_prepare(shared_data, tmp_path, capsys, n_points, message):
    root = make_300w(shared_data, tmp_path / "300W")
    pts = root / "lfpw" / "trainset" / "image_0002.pts"
    lines = pts.read_text().splitlines()
    lines = [f"n_points: {n_points}" if line.startswith("n_points") else line for line in lines]
    if n_points == "67":                       # self-consistent: one landmark line fewer
        closing = lines.index("}")
        del lines[closing - 1]
    pts.write_text("\n".join(lines) + "\n")
    assert prepare_main(["300w", "--root", str(root), "--out", str(tmp_path / "out"), "--no-progress"]) == 1
    assert f"image_0002.pts: {message}" in capsys.readouterr().err
    assert not (tmp_path / "out" / "train" / "train_68pt.txt").exists()
    with pytest.raises(ValueError, match=message):
        read_pts(pts, num_landmarks=68)


def test_a_missing_300w_image_is_an_error_not_a_skipped_split(shared_data, tmp_path, capsys):
    root = make_300w(shared_data, tmp_path / "300W")
    (root / "lfpw" / "trainset" / "image_0003.png").unlink()
    assert prepare_main(["300w", "--root", str(root), "--out", str(tmp_path / "out"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "image_0003.pts: no image beside it" in err
    assert not (tmp_path / "out" / "train").exists()
