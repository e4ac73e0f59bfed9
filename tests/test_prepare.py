"""`lgrn prepare` on the real WFLW and 300W samples (copied into tmp_path in the official layouts) and on a
written COFW file: landmarks map back to the originals through the stored transforms, crops contain the
landmark box and follow the transform pixel by pixel, re-runs are idempotent, the attr files match."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from lgrn.data import prepare as prepare_module
from lgrn.cli.prepare import main
from lgrn.geometry import cut_crop
from lgrn.data.readers import (read_attributes, read_cofw, read_crops, read_pts, read_release_list,
                               read_wflw_official)
from lgrn.geometry import apply_affine, crop_matrix, invert_affine, warp

from test_readers import make_300w, write_cofw_v73


@pytest.fixture
def wflw_root(shared_data: Path, tmp_path: Path) -> Path:
    """Official WFLW layout: all 14 real faces as the test list, 3 of them plus 2 bad ones as the train list."""
    root = tmp_path / "WFLW"
    shutil.copytree(shared_data / "wflw" / "WFLW_images", root / "WFLW_images")
    lists = root / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
    lists.mkdir(parents=True)
    lines = (shared_data / "wflw" / "list_98pt_rect_attr_test.txt").read_text().splitlines()
    shutil.copy(shared_data / "wflw" / "list_98pt_rect_attr_test.txt", lists / "list_98pt_rect_attr_test.txt")
    nan_line = lines[3].split()
    nan_line[10] = "nan"
    lost_line = lines[4].split()
    lost_line[-1] = "54--Rescue/not_there.jpg"
    train = lines[:3] + [" ".join(nan_line), " ".join(lost_line)]
    (lists / "list_98pt_rect_attr_train.txt").write_text("\n".join(train) + "\n")
    return root


def check_round_trip(out_split: Path, list_name: str, num_landmarks: int, originals: dict[str, np.ndarray],
                     size: int = 256) -> list:
    """Every prepared face maps back to its original landmarks within 0.01 px; its landmark box is inside
    the crop; the crop has the requested size."""
    samples = read_release_list(out_split / "Image", out_split / list_name, num_landmarks)
    crops = read_crops(out_split / list_name.replace(".txt", "_crops.jsonl"))
    assert list(crops) == [s.name for s in samples]
    for sample in samples:
        back = apply_affine(sample.landmarks, invert_affine(crops[sample.name].matrix))
        np.testing.assert_allclose(back, originals[sample.name], atol=0.01)
        np.testing.assert_array_equal(sample.crop_matrix, crops[sample.name].matrix)
        assert sample.landmarks.min() >= 0 and sample.landmarks.max() <= size
        assert cv2.imread(str(sample.image_path)).shape == (size, size, 3)
    return samples


def test_prepare_wflw(wflw_root: Path, tmp_path: Path, capsys):
    # official per-subset lists, one of them disagreeing with the flags (a blurred face left out)
    lines = (wflw_root / "WFLW_annotations" / "list_98pt_rect_attr_train_test" /
             "list_98pt_rect_attr_test.txt").read_text().splitlines()
    subset_dir = wflw_root / "WFLW_annotations" / "list_98pt_test"
    subset_dir.mkdir()
    for column, suffix in enumerate(("largepose", "expression", "illumination", "makeup", "occlusion", "blur")):
        chosen = [line for line in lines if line.split()[200 + column] == "1"]
        (subset_dir / f"list_98pt_test_{suffix}.txt").write_text("\n".join(chosen[1:] if suffix == "blur" else chosen))
    num_blurred = sum(line.split()[205] == "1" for line in lines)
    out = tmp_path / "data" / "WFLW"
    assert main(["wflw", "--root", str(wflw_root), "--out", str(out), "--no-progress"]) == 0
    report = capsys.readouterr().out
    assert "train: 3 face(s) listed (3 crop(s) written" in report
    nan_face = "12--Group/12_Group_Team_Organized_Group_12_Group_Team_Organized_Group_12_919_0.jpg"
    assert f"skipped 1: landmarks with NaN or infinity: {nan_face}" in report
    assert "skipped 1: unreadable or missing image:" in report and "not_there.jpg" in report
    assert "test: 14 face(s) listed (14 crop(s) written" in report
    assert f"subset blur: the flags mark {num_blurred} face(s), the subset list {num_blurred - 1}" in report
    assert "subset pose" not in report

    official = read_wflw_official(wflw_root / "WFLW_annotations" / "list_98pt_rect_attr_train_test" /
                                  "list_98pt_rect_attr_test.txt", wflw_root / "WFLW_images")
    samples = check_round_trip(out / "test", "test_98pt.txt", 98, {s.name: s.landmarks for s in official})
    assert [s.name for s in samples] == [s.name for s in official]  # order kept, nested names kept
    assert (out / "test" / "Image" / "46--Jockey" / "46_Jockey_Jockey_46_439_0.jpg").is_file()
    read_attributes(out / "test" / "test_98pt_attr.txt", samples)
    assert [s.attributes for s in samples] == [s.attributes for s in official]
    crops = read_crops(out / "test" / "test_98pt_crops.jsonl")
    assert crops[official[0].name].original == "WFLW_images/" + official[0].name.replace("_0.jpg", ".jpg")
    assert len(read_release_list(out / "train" / "Image", out / "train" / "train_98pt.txt", 98)) == 3
    assert not (out / "train" / "train_98pt_attr.txt").exists()

    # The crop pixels follow the stored matrix: compare with a direct warp of the original (the prepared
    # crop is anti-aliased and JPEG-compressed, so compare after a blur).
    first = official[0]
    crop = cv2.imread(str(out / "test" / "Image" / first.name)).astype(np.float32)
    direct = warp(cv2.imread(str(first.image_path)), crops[first.name].matrix, 256).astype(np.float32)
    blur = (lambda im: cv2.GaussianBlur(im, (0, 0), 2.0))
    assert np.abs(blur(crop) - blur(direct)).mean() < 4.0
    shifted = warp(cv2.imread(str(first.image_path)), crops[first.name].matrix + [[0, 0, 3], [0, 0, 0]], 256)
    assert np.abs(blur(crop) - blur(shifted.astype(np.float32))).mean() > 2 * np.abs(blur(crop) - blur(direct)).mean()


def test_prepare_wflw_is_idempotent_and_follows_options(wflw_root: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    args = ["wflw", "--root", str(wflw_root), "--out", str(out), "--no-progress"]
    assert main(args) == 0
    files = ["test/test_98pt.txt", "test/test_98pt_attr.txt", "test/test_98pt_crops.jsonl", "train/train_98pt.txt"]
    before = {f: (out / f).read_bytes() for f in files}
    image = out / "test" / "Image" / "46--Jockey" / "46_Jockey_Jockey_46_439_0.jpg"
    mtime = image.stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0
    assert "test: 14 face(s) listed (0 crop(s) written, 14 already up to date)" in capsys.readouterr().out
    assert {f: (out / f).read_bytes() for f in files} == before
    assert image.stat().st_mtime_ns == mtime
    # another crop size: every crop is cut again and the lists follow
    assert main(args + ["--size", "128"]) == 0
    assert "test: 14 face(s) listed (14 crop(s) written" in capsys.readouterr().out
    official = read_wflw_official(wflw_root / "WFLW_annotations" / "list_98pt_rect_attr_train_test" /
                                  "list_98pt_rect_attr_test.txt", wflw_root / "WFLW_images")
    check_round_trip(out / "test", "test_98pt.txt", 98, {s.name: s.landmarks for s in official}, size=128)
    assert not list(out.rglob("*.tmp"))


def test_interrupted_run_resumes(wflw_root: Path, tmp_path: Path, monkeypatch, capsys):
    (wflw_root / "WFLW_annotations" / "list_98pt_rect_attr_train_test" / "list_98pt_rect_attr_train.txt").unlink()
    out = tmp_path / "out"
    calls = {"n": 0}

    def failing_cut(image, matrix, size):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return cut_crop(image, matrix, size)

    monkeypatch.setattr(prepare_module, "cut_crop", failing_cut)
    args = ["wflw", "--root", str(wflw_root), "--out", str(out), "--no-progress"]
    with pytest.raises(KeyboardInterrupt):
        main(args)
    assert not (out / "test" / "test_98pt.txt").exists()  # no half list
    assert len(read_crops(out / "test" / "test_98pt_crops.jsonl")) == 5
    monkeypatch.setattr(prepare_module, "cut_crop", cut_crop)
    capsys.readouterr()
    assert main(args) == 0
    assert "14 face(s) listed (9 crop(s) written, 5 already up to date)" in capsys.readouterr().out


def test_prepare_300w(shared_data: Path, tmp_path: Path, capsys):
    root = make_300w(shared_data, tmp_path / "300W")
    out = tmp_path / "data" / "300W"
    assert main(["300w", "--root", str(root), "--out", str(out), "--no-progress"]) == 0
    assert "skipped missing folder(s) helen/trainset, afw" in capsys.readouterr().out
    originals = {p.relative_to(root).with_suffix(".png").as_posix(): read_pts(p) for p in root.rglob("*.pts")}
    train = check_round_trip(out / "train", "train_68pt.txt", 68, originals)
    assert len(train) == 4
    test = check_round_trip(out / "test", "test_68pt.txt", 68, originals)
    assert (out / "test" / "test_68pt_attr.txt").read_text() == \
        "1 0 lfpw/testset/image_0005.png\n0 1 ibug/image_0010.png\n"
    read_attributes(out / "test" / "test_68pt_attr.txt", test)
    assert test[1].attributes == {"common": 0, "challenging": 1}


def test_prepare_real_300w_recropped(shared_data: Path, tmp_path: Path, capsys):
    """The real 300-W folder: 2,012 training faces and the 554-face common test set, at the shipped
    model's 128 px; every crop's list landmarks are the .pts landmarks through the recorded crop matrix."""
    root = shared_data / "300w_recropped"
    out = tmp_path / "300W_128"
    assert main(["300w", "--root", str(root), "--out", str(out), "--size", "128", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "train: 2012 face(s) listed" in text and "test: 554 face(s) listed" in text
    assert "skipped missing folder(s) ibug" in text            # no iBUG here: 'common' only, said so
    train = read_release_list(out / "train" / "Image", out / "train" / "train_68pt.txt", 68)
    test = read_release_list(out / "test" / "Image", out / "test" / "test_68pt.txt", 68)
    assert len(train) == 2012 and len(test) == 554
    assert {s.name.split("/")[0] for s in train} == {"afw", "lfpw", "helen"}
    assert sum(s.name.startswith("helen/testset/") for s in test) == 330
    assert sum(s.name.startswith("lfpw/testset/") for s in test) == 224
    crops = read_crops(out / "test" / "test_68pt_crops.jsonl")
    for sample in test[::111]:
        record = crops[sample.name]
        original = read_pts((root / record.original).with_suffix(".pts"))
        np.testing.assert_allclose(apply_affine(original, record.matrix), sample.landmarks, atol=1e-4)
        assert cv2.imread(str(out / "test" / "Image" / sample.name)).shape == (128, 128, 3)


def test_prepare_cofw_keeps_visibility_as_weights(tmp_path: Path):
    root = tmp_path / "COFW"
    root.mkdir()
    write_cofw_v73(root / "COFW_test_color.mat", ("IsT", "phisT", "bboxesT"))
    out = tmp_path / "data" / "COFW"
    assert main(["cofw", "--root", str(root), "--out", str(out), "--size", "64", "--no-progress"]) == 0
    lines = (out / "test" / "test_29pt.txt").read_text().splitlines()
    assert [len(line.split()) for line in lines] == [4 * 29 + 1] * 2
    faces = read_cofw(root / "COFW_test_color.mat", "test")
    samples = check_round_trip(out / "test", "test_29pt.txt", 29, {s.name: s.landmarks for s in faces}, size=64)
    np.testing.assert_array_equal(samples[1].visibility, faces[1].visibility)
    assert not samples[1].visibility[3]
    assert read_crops(out / "test" / "test_29pt_crops.jsonl")["image_0002.png"].original == "COFW_test_color.mat:2"


def test_cut_crop_antialiased_downscale_keeps_geometry():
    """A dot painted in a large image lands where the matrix says after a strong reduction (x 0.15)."""
    dot = np.array([731.0, 402.0])
    ys, xs = np.mgrid[0:900, 0:1200].astype(np.float64)
    image = (255 * np.exp(-((xs - dot[0]) ** 2 + (ys - dot[1]) ** 2) / (2 * 12.0 ** 2))).astype(np.uint8)
    matrix = crop_matrix([100.0, 50.0, 1100.0 + 1 / 3, 1050.0 + 1 / 3], 150)
    out = cut_crop(np.dstack([image] * 3), matrix, 150)[:, :, 0].astype(np.float64)
    cy, cx = np.mgrid[0:150, 0:150]
    found = np.array([(cx * out).sum(), (cy * out).sum()]) / out.sum()
    assert np.linalg.norm(found - apply_affine(dot, matrix)) <= 0.1


def test_missing_inputs_give_clear_messages(tmp_path: Path, capsys):
    (tmp_path / "WFLW" / "WFLW_images").mkdir(parents=True)
    assert main(["wflw", "--root", str(tmp_path / "WFLW"), "--out", str(tmp_path / "o"), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "list_98pt_rect_attr_train.txt not found: skipping the train split" in captured.out
    assert "nothing to prepare" in captured.err
    assert main(["cofw", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2


@pytest.mark.parametrize("bad", ["/tmp/lgrn_escape/face.jpg", "../../escape/face.jpg", "a/../../../face.jpg"])
def test_prepare_never_writes_outside_out(wflw_root: Path, tmp_path: Path, capsys, bad: str):
    """An image path in an annotation file that is absolute or climbs out with ../ is a named error;
    nothing is created outside --out (nor outside the dataset root when reading)."""
    source = wflw_root / "WFLW_annotations" / "list_98pt_rect_attr_train_test" / "list_98pt_rect_attr_train.txt"
    lines = source.read_text().splitlines()
    fields = lines[2].split()
    fields[-1] = bad
    lines[2] = " ".join(fields)
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main(["wflw", "--root", str(wflw_root), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"{source.name}:3: field 207 (image): {bad!r}" in err
    assert ("is an absolute path" in err) if bad.startswith("/") else ("leaves its root" in err)
    assert not Path("/tmp/lgrn_escape").exists()
    assert not any(p for p in tmp_path.rglob("*face*") if out not in p.parents)
