"""Dataset readers on the real samples in ../shared/data and on written fixtures, including malformed input
whose errors must name the file, the line and the field."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from lgrn.data.readers import (WFLW_ATTRIBUTES, CropRecord, read_300w, read_attributes, read_cofw, read_crops,
                               read_generic, read_pts, read_release_list, read_release_lists, read_wflw_official,
                               read_wflw_subset_lists, write_crops)
from lgrn.landmarks import get_scheme


def touch_image(path: Path, size: tuple[int, int] = (8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((size[1], size[0], 3), np.uint8))
    return path


# ---------------------------------------------------------------- the release's list format
@pytest.fixture
def release_root(tmp_path: Path) -> Path:
    touch_image(tmp_path / "Image" / "a" / "one.png")
    touch_image(tmp_path / "Image" / "two.png")
    (tmp_path / "list.txt").write_text(
        "1 2 3 4 5.5 6.25 a/one.png\n"
        "\n"
        "7 8 9 10 11 12 1 1 0.5 0 1 1 two.png\n")
    return tmp_path


def test_release_list_coordinates_weights_and_names(release_root: Path):
    samples = read_release_list(release_root / "Image", release_root / "list.txt", 3)
    assert [s.name for s in samples] == ["a/one.png", "two.png"]
    np.testing.assert_array_equal(samples[0].landmarks, [[1, 2], [3, 4], [5.5, 6.25]])
    assert samples[0].visibility is None
    # weights (1 1) (0.5 0) (1 1): a landmark is visible when both of its weights are > 0
    np.testing.assert_array_equal(samples[1].visibility, [True, False, True])
    assert samples[1].image_path == release_root / "Image" / "two.png"
    assert samples[1].source.endswith("list.txt:3")
    assert samples[0].crop_matrix is None


@pytest.mark.parametrize("line, error, message", [
    ("1 2 3 4 5 a/one.png", ValueError, r"list\.txt:1: expected 7 fields .* or 13 .*got 6"),
    ("1 2 abc 4 5 6 a/one.png", ValueError, r"list\.txt:1: field 3 \(x of landmark 1\): 'abc' is not a number"),
    ("1 2 3 4 5 nan a/one.png", ValueError, r"list\.txt:1: field 6 \(y of landmark 2\): 'nan' is not a finite"),
    ("1 2 3 4 5 6 1 1 1 x 1 1 a/one.png", ValueError, r"list\.txt:1: field 10 \(weight 3\): 'x'"),
    ("1 2 3 4 5 6 missing.png", FileNotFoundError, r"list\.txt:1: field 7 \(image\): image not found: .*missing"),
])
def test_release_list_errors_name_file_line_and_field(release_root: Path, line, error, message):
    (release_root / "list.txt").write_text(line + "\n")
    with pytest.raises(error, match=message):
        read_release_list(release_root / "Image", release_root / "list.txt", 3)


def test_release_list_without_image_check_and_several_pairs(release_root: Path, tmp_path: Path):
    (tmp_path / "other.txt").write_text("0 0 1 1 2 2 nowhere.png\n")
    assert read_release_list(tmp_path, tmp_path / "other.txt", 3, check_images=False)[0].name == "nowhere.png"
    both = read_release_lists(f"{release_root / 'Image'} {tmp_path}", f"{release_root / 'list.txt'} "
                              f"{tmp_path / 'other.txt'}", 3, check_images=False)
    assert [s.name for s in both] == ["a/one.png", "two.png", "nowhere.png"]
    with pytest.raises(ValueError, match="2 source"):
        read_release_lists(str(release_root), f"{release_root / 'list.txt'} {tmp_path / 'other.txt'}", 3)


def test_attributes_matched_by_order_and_name(release_root: Path):
    samples = read_release_list(release_root / "Image", release_root / "list.txt", 3)
    attr = release_root / "list_attr.txt"
    attr.write_text("0 1 a/one.png\n1 0 two.png\n")
    read_attributes(attr, samples, ["common", "challenging"])
    assert samples[0].attributes == {"common": 0, "challenging": 1}
    assert samples[1].attributes == {"common": 1, "challenging": 0}
    attr.write_text("0 1 a/one.png\n1 0 three.png\n")
    with pytest.raises(ValueError,
                       match=r"list_attr\.txt:2: field 3 \(name\): 'three\.png' does not match .*'two\.png'"):
        read_attributes(attr, samples, ["common", "challenging"])
    attr.write_text("0 1 a/one.png\n")
    with pytest.raises(ValueError, match="1 attribute line.* for 2 sample"):
        read_attributes(attr, samples, ["common", "challenging"])
    attr.write_text("0 2 a/one.png\n1 0 two.png\n")
    with pytest.raises(ValueError, match=r"list_attr\.txt:1: field 2 \(challenging\): '2' is not 0 or 1"):
        read_attributes(attr, samples, ["common", "challenging"])


def test_attribute_names_default_to_the_scheme(tmp_path: Path):
    (tmp_path / "l.txt").write_text(" ".join(["1"] * 136) + " x.png\n")
    samples = read_release_list(tmp_path, tmp_path / "l.txt", 68, check_images=False)
    (tmp_path / "a.txt").write_text("1 0 x.png\n")
    assert read_attributes(tmp_path / "a.txt", samples)[0].attributes == {"common": 1, "challenging": 0}


def test_crop_sidecar_round_trip_and_attached_to_samples(release_root: Path):
    matrix = np.array([[2.0, 0.0, -10.5], [0.0, 2.0, 3.25]])
    write_crops(release_root / "list_crops.jsonl", [CropRecord("two.png", "raw/two.jpg", matrix, 256)])
    record = read_crops(release_root / "list_crops.jsonl")["two.png"]
    assert (record.original, record.size) == ("raw/two.jpg", 256)
    np.testing.assert_array_equal(record.matrix, matrix)
    samples = read_release_list(release_root / "Image", release_root / "list.txt", 3)
    assert samples[0].crop_matrix is None
    np.testing.assert_array_equal(samples[1].crop_matrix, matrix)
    (release_root / "list_crops.jsonl").write_text('{"name": "x", "original": "y", "size": 4, "matrix": [1, 2]}\n')
    with pytest.raises(ValueError, match=r"list_crops\.jsonl:1: field 'matrix'"):
        read_crops(release_root / "list_crops.jsonl")


# ---------------------------------------------------------------- official WFLW
def test_wflw_official_real_lines(shared_data: Path):
    source = shared_data / "wflw" / "list_98pt_rect_attr_test.txt"
    samples = read_wflw_official(source, shared_data / "wflw" / "WFLW_images")
    lines = [line.split() for line in source.read_text().splitlines() if line.strip()]
    assert len(samples) == len(lines) == 14
    first = samples[0]
    assert first.name == "36--Football/36_Football_americanfootball_ball_36_415_0.jpg"
    np.testing.assert_allclose(first.landmarks[0], [440.696106, 132.732559])
    np.testing.assert_allclose(first.bbox, [440, 95, 526, 205])
    for sample, tokens in zip(samples, lines):
        np.testing.assert_allclose(sample.landmarks[97], [float(tokens[194]), float(tokens[195])])
        assert list(sample.attributes.values()) == [int(t) for t in tokens[200:206]]
        assert Path(sample.image_path).is_file()
    assert sum(s.attributes["blur"] for s in samples) == sum(int(t[205]) for t in lines) > 0
    assert len({s.name for s in samples}) == 14


def test_wflw_faces_sharing_an_image_get_unique_names(shared_data: Path, tmp_path: Path):
    line = (shared_data / "wflw" / "list_98pt_rect_attr_test.txt").read_text().splitlines()[10]
    (tmp_path / "list.txt").write_text(f"{line}\n{line}\n")
    samples = read_wflw_official(tmp_path / "list.txt", shared_data / "wflw" / "WFLW_images")
    assert [s.name for s in samples] == ["46--Jockey/46_Jockey_Jockey_46_439_0.jpg",
                                         "46--Jockey/46_Jockey_Jockey_46_439_1.jpg"]


@pytest.mark.parametrize("index, value, error, message", [
    (56, "abc", ValueError, r"list\.txt:2: field 57 \(x of landmark 28\): 'abc' is not a number"),
    (198, "?", ValueError, r"list\.txt:2: field 199 \(box x2\)"),
    (203, "7", ValueError, r"list\.txt:2: field 204 \(makeup flag\): '7' is not 0 or 1"),
    (206, "1--X/none.jpg", FileNotFoundError, r"list\.txt:2: field 207 \(image\): image not found"),
    (None, None, ValueError, r"list\.txt:2: expected 207 fields .*got 206"),
])
def test_wflw_malformed_lines(shared_data: Path, tmp_path: Path, index, value, error, message):
    lines = (shared_data / "wflw" / "list_98pt_rect_attr_test.txt").read_text().splitlines()[:2]
    tokens = lines[1].split()
    if index is None:
        del tokens[3]
    else:
        tokens[index] = value
    (tmp_path / "list.txt").write_text(lines[0] + "\n" + " ".join(tokens) + "\n")
    with pytest.raises(error, match=message):
        read_wflw_official(tmp_path / "list.txt", shared_data / "wflw" / "WFLW_images")


def test_wflw_subset_lists_membership_by_content(shared_data: Path, tmp_path: Path):
    source = shared_data / "wflw" / "list_98pt_rect_attr_test.txt"
    samples = read_wflw_official(source, shared_data / "wflw" / "WFLW_images")
    lines = source.read_text().splitlines()
    subset_dir = tmp_path / "list_98pt_test"
    subset_dir.mkdir()
    for column, suffix in enumerate(("largepose", "expression", "illumination", "makeup", "occlusion", "blur")):
        # reformatted copies (other spacing, trailing zeros) must still match by content
        chosen = ["  ".join(f"{float(t):.7f}" if i < 196 else t for i, t in enumerate(line.split()))
                  for line in lines if line.split()[200 + column] == "1"]
        (subset_dir / f"list_98pt_test_{suffix}.txt").write_text("\n".join(chosen) + "\n")
    members = read_wflw_subset_lists(tmp_path, samples)
    for attribute, names in members.items():
        assert set(names) == {s.name for s in samples if s.attributes[attribute]}
    assert members["blur"]
    with pytest.raises(ValueError, match=r"list_98pt_test_largepose\.txt:1: .*not among the 2 given samples"):
        (subset_dir / "list_98pt_test_largepose.txt").write_text(lines[5] + "\n")
        read_wflw_subset_lists(tmp_path, samples[:2])


# ---------------------------------------------------------------- 300W
def test_read_pts_real_file_is_made_zero_based(shared_data: Path):
    path = shared_data / "300w" / "lfpw" / "trainset" / "image_0001.pts"
    landmarks = read_pts(path)
    assert landmarks.shape == (68, 2)
    np.testing.assert_allclose(landmarks[0], [115.167660 - 1, 220.807529 - 1])
    np.testing.assert_allclose(landmarks[67], [183.164758 - 1, 334.765621 - 1])


@pytest.mark.parametrize("edit, message", [
    (lambda ls: ls.__setitem__(4, "1.0 abc"), r"bad\.pts:5: field 2 \(y of landmark 1\): 'abc' is not a number"),
    (lambda ls: ls.__setitem__(1, "n_points: 69"), r"bad\.pts:72: expected landmark 68 of 69 .*closing brace"),
    (lambda ls: ls.__setitem__(5, "1 2 3"), r"bad\.pts:6: landmark 2: expected 2 numbers"),
    (lambda ls: ls.pop(), r"bad\.pts:71: expected '}' after 68 landmarks"),
])
def test_read_pts_errors(shared_data: Path, tmp_path: Path, edit, message):
    lines = (shared_data / "300w" / "lfpw" / "trainset" / "image_0001.pts").read_text().splitlines()
    edit(lines)
    (tmp_path / "bad.pts").write_text("\n".join(lines))
    with pytest.raises(ValueError, match=message):
        read_pts(tmp_path / "bad.pts")


def make_300w(shared_data: Path, root: Path) -> Path:
    """A 300W layout from the real LFPW samples: 4 in lfpw/trainset, 1 in lfpw/testset, 1 in ibug."""
    real = shared_data / "300w" / "lfpw" / "trainset"
    plan = {"lfpw/trainset": ["image_0001", "image_0002", "image_0003", "image_0004"],
            "lfpw/testset": ["image_0005"], "ibug": ["image_0010"]}
    for folder, stems in plan.items():
        (root / folder).mkdir(parents=True)
        for stem in stems:
            for suffix in (".png", ".pts"):
                shutil.copy(real / (stem + suffix), root / folder / (stem + suffix))
    return root


def test_read_300w_splits_and_subset_flags(shared_data: Path, tmp_path: Path):
    root = make_300w(shared_data, tmp_path / "300W")
    with pytest.warns(UserWarning, match="skipped missing folder.*helen/trainset, afw"):
        train = read_300w(root, "train")
    assert [s.name for s in train] == [f"lfpw/trainset/image_000{i}.png" for i in (1, 2, 3, 4)]
    np.testing.assert_allclose(train[0].landmarks, read_pts(root / "lfpw/trainset/image_0001.pts"))
    with pytest.warns(UserWarning, match="helen/testset"):
        full = read_300w(root, "full")
    assert [(s.name, s.attributes) for s in full] == [
        ("lfpw/testset/image_0005.png", {"common": 1, "challenging": 0}),
        ("ibug/image_0010.png", {"common": 0, "challenging": 1})]
    with pytest.raises(FileNotFoundError, match="none of its folders"):
        read_300w(tmp_path / "empty", "challenging")
    (root / "ibug" / "image_0010.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"image_0010\.pts: no image beside it"):
        read_300w(root, "challenging")


# ---------------------------------------------------------------- COFW
def cofw_arrays() -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Two faces as MATLAB holds them: an RGB image (H 5 x W 7) and a grayscale one, 87-value phis rows."""
    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[1, 6] = (200, 100, 50)  # R, G, B at row 1, column 6
    gray = np.arange(6 * 4, dtype=np.uint8).reshape(6, 4)
    phis = np.zeros((2, 87))
    phis[:, :29] = np.arange(29) + 1.0      # x (1-based)
    phis[:, 29:58] = np.arange(29) + 101.0  # y
    phis[1, 58 + 3] = 1                     # face 2, landmark 3 occluded
    boxes = np.array([[11.0, 21.0, 30.0, 40.0], [1.0, 2.0, 3.0, 4.0]])
    return [rgb, gray], phis, boxes


def write_cofw_v73(path: Path, split_keys: tuple[str, str, str]) -> None:
    """A MATLAB v7.3-style file: HDF5 behind a 512-byte user block, cells as object references, every array
    stored transposed (MATLAB is column-major)."""
    import h5py

    images, phis, boxes = cofw_arrays()
    images_key, phis_key, boxes_key = split_keys
    with h5py.File(path, "w", userblock_size=512) as mat:
        refs = mat.create_dataset(images_key, (1, len(images)), dtype=h5py.ref_dtype)
        for i, image in enumerate(images):
            refs[0, i] = mat.create_dataset(f"#refs#/{i}", data=image.T).ref
        mat[phis_key] = phis.T
        mat[boxes_key] = boxes.T
    with path.open("r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .")


def write_cofw_v5(path: Path, split_keys: tuple[str, str, str]) -> None:
    import scipy.io

    images, phis, boxes = cofw_arrays()
    cells = np.empty((len(images), 1), dtype=object)
    for i, image in enumerate(images):
        cells[i, 0] = image
    scipy.io.savemat(str(path), {split_keys[0]: cells, split_keys[1]: phis, split_keys[2]: boxes})


@pytest.mark.parametrize("writer", [write_cofw_v73, write_cofw_v5])
@pytest.mark.parametrize("split, keys", [("train", ("IsTr", "phisTr", "bboxesTr")),
                                         ("test", ("IsT", "phisT", "bboxesT"))])
def test_read_cofw_both_layouts(tmp_path: Path, writer, split, keys):
    path = tmp_path / "cofw.mat"
    writer(path, keys)
    samples = read_cofw(path, split)
    assert [s.name for s in samples] == ["image_0001.png", "image_0002.png"]
    first, second = samples
    assert first.image.shape == (5, 7, 3) and first.image.dtype == np.uint8
    np.testing.assert_array_equal(first.image[1, 6], (50, 100, 200))  # BGR now
    assert second.image.shape == (6, 4, 3)
    np.testing.assert_array_equal(second.image[2, 3], (11, 11, 11))  # row 2, column 3 of arange(24).reshape(6, 4)
    np.testing.assert_allclose(first.landmarks[5], [5.0, 105.0])  # (6, 106) 1-based
    np.testing.assert_allclose(first.bbox, [10, 20, 40, 60])      # x, y, w, h = 11, 21, 30, 40
    assert first.visibility.all()
    assert not second.visibility[3] and second.visibility.sum() == 28
    with pytest.raises(ValueError, match="missing variable"):
        read_cofw(path, "test" if split == "train" else "train")


# ---------------------------------------------------------------- generic CSV / JSON lines
def test_generic_csv_and_jsonl(tmp_path: Path):
    touch_image(tmp_path / "img" / "a.jpg")
    touch_image(tmp_path / "img" / "b.jpg")
    (tmp_path / "ann.csv").write_text("image,x0,y0,x1,y1,v0,v1\nimg/a.jpg,1,2,3,4,1,0\nimg/b.jpg,5,6,7,8,1,1\n")
    samples = read_generic(tmp_path / "ann.csv")
    assert [s.name for s in samples] == ["img/a.jpg", "img/b.jpg"]
    np.testing.assert_array_equal(samples[0].landmarks, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(samples[0].visibility, [True, False])
    records = [{"image": "img/a.jpg", "landmarks": [[1, 2], [3, 4]], "bbox": [0, 0, 5, 5]},
               {"image": "img/a.jpg", "landmarks": [[5, 6], [7, 8]], "visibility": [1, 0], "attributes": {"x": 1}}]
    (tmp_path / "ann.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    samples = read_generic(tmp_path / "ann.jsonl", num_landmarks=2)
    assert [s.name for s in samples] == ["img/a_0.jpg", "img/a_1.jpg"]  # two faces of one image
    np.testing.assert_array_equal(samples[0].bbox, [0, 0, 5, 5])
    assert samples[0].visibility is None and samples[1].attributes == {"x": 1}
    np.testing.assert_array_equal(samples[1].visibility, [True, False])


@pytest.mark.parametrize("name, text, error, message", [
    ("a.csv", "image,x0,y0,x1,z1\n", ValueError, r"a\.csv:1: column 5: expected 'y1', got 'z1'"),
    ("a.csv", "image,x0,y0\nimg/a.jpg,1,abc\n", ValueError, r"a\.csv:2: column 3 \(y0\): 'abc' is not a number"),
    ("a.csv", "image,x0,y0\nimg/a.jpg,1\n", ValueError, r"a\.csv:2: expected 3 columns"),
    ("a.csv", "image,x0,y0\nimg/zz.jpg,1,2\n", FileNotFoundError, r"a\.csv:2: column 1 \(image\): image not found"),
    ("a.jsonl", '{"image": "img/a.jpg", "landmarks": [[1, 2]]}\n'
                '{"image": "img/a.jpg", "landmarks": [[1, 2], [3, 4]]}\n',
     ValueError, r"a\.jsonl:2: field 'landmarks': 2 landmarks, expected 1"),
    ("a.jsonl", '{"image": "img/a.jpg", "landmarks": [[1, "q"]]}\n', ValueError,
     r"a\.jsonl:1: field 'landmarks' \(y of landmark 0\): 'q' is not a number"),
    ("a.jsonl", '{"image": "img/a.jpg"}\n', ValueError, r"a\.jsonl:1: missing field 'landmarks'"),
])
def test_generic_errors(tmp_path: Path, name, text, error, message):
    touch_image(tmp_path / "img" / "a.jpg")
    (tmp_path / name).write_text(text)
    with pytest.raises(error, match=message):
        read_generic(tmp_path / name)


def test_wflw_attribute_columns_are_the_wflw98_subsets():
    """The six flags of the official WFLW lists, in file order, are the wflw98 scheme's subsets."""
    assert WFLW_ATTRIBUTES == get_scheme("wflw98").subsets == (
        "pose", "expression", "illumination", "makeup", "occlusion", "blur")
