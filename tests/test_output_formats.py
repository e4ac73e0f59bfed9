"""`lgrn predict --format`: every output format written for real photos and read back (the .pts through
lgrn's own 300-W reader), plus the naming of per-face files for video frames."""
from __future__ import annotations

import csv
import json
import shutil

import cv2
import numpy as np
import pytest

from lgrn.data.readers import read_pts
from lgrn.landmarks import get_scheme
from lgrn.output_formats import coco_document, pts_name, write_outputs
from lgrn.cli.predict import main as predict_main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_format_reads_back(shared_data, tmp_path):
    photos = tmp_path / "photos"
    (photos / "nested").mkdir(parents=True)
    shutil.copy(sorted((shared_data / "wflw" / "WFLW_images").rglob("*.jpg"))[0], photos / "group.jpg")  # 3 people
    shutil.copy(shared_data / "300w_recropped" / "lfpw" / "testset" / "image_0001.jpg", photos / "nested" / "one.jpg")
    out = tmp_path / "out"
    assert predict_main([str(photos), "--out", str(out), "--no-progress", "--no-annotate",
                         "--format", "json,csv,coco,pts,openface"]) == 0
    faces = json.loads((out / "landmarks.json").read_text())["faces"]
    assert len({f["image"] for f in faces}) == 2 and len(faces) >= 3
    # COCO keypoints
    coco = json.loads((out / "landmarks_coco.json").read_text())
    images = {i["id"]: i for i in coco["images"]}
    assert {i["file_name"] for i in images.values()} == {"group.jpg", "nested/one.jpg"}
    for image in images.values():
        h, w = cv2.imread(str(photos / image["file_name"])).shape[:2]
        assert (image["height"], image["width"]) == (h, w)
    assert len(coco["annotations"]) == len(faces)
    for face, ann in zip(faces, coco["annotations"]):
        assert images[ann["image_id"]]["file_name"] == face["image"] and ann["num_keypoints"] == 68
        keypoints = np.array(ann["keypoints"]).reshape(68, 3)
        np.testing.assert_allclose(keypoints[:, :2], face["landmarks"], atol=1e-3)
        assert set(keypoints[:, 2]) == {2}
        x1, y1, x2, y2 = face["box"]
        np.testing.assert_allclose(ann["bbox"], [x1, y1, x2 - x1, y2 - y1], atol=1e-3)
    category = coco["categories"][0]
    assert len(category["keypoints"]) == 68
    assert all(1 <= a < b <= 68 for a, b in category["skeleton"]) and len(category["skeleton"]) > 60
    # one .pts per face, through lgrn's 300-W reader (1-based on disk, 0-based back)
    for face in faces:
        stem = face["image"].rsplit(".", 1)[0]
        np.testing.assert_allclose(read_pts(out / "pts" / f"{stem}_{face['face']}.pts"), face["landmarks"], atol=1e-3)
    assert len(list((out / "pts").rglob("*.pts"))) == len(faces)
    # OpenFace-style wide CSV
    with open(out / "landmarks_openface.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(faces)
    for face, row in zip(faces, rows):
        assert row["image"] == face["image"] and int(row["face_id"]) == face["face"] and row["success"] == "1"
        np.testing.assert_allclose([[float(row[f"x_{k}"]), float(row[f"y_{k}"])] for k in range(68)],
                                   face["landmarks"], atol=1e-3)
    assert [r["frame"] for r in rows] == ["1"] * sum(f["image"] == faces[0]["image"] for f in faces) + \
        ["2"] * sum(f["image"] != faces[0]["image"] for f in faces)


def test_video_records_and_bad_format(tmp_path, capsys):
    scheme = get_scheme("300w68")
    points = np.arange(136, dtype=float).reshape(68, 2)
    records = [{"image": "clip.mp4", "face": 0, "frame": f, "time": f / 25, "track": 3, "image_size": [90, 120],
                "box": [1.0, 2.0, 41.0, 52.0], "crop_box": [0, 0, 50, 50], "landmarks": (points + f).tolist()}
               for f in range(2)]
    written = write_outputs(tmp_path, records, scheme, {"mode": "video"}, ("coco", "pts", "openface"))
    assert pts_name(records[1]) == "clip_f000001_0.pts"
    np.testing.assert_allclose(read_pts(tmp_path / "pts" / "clip_f000001_0.pts"), points + 1)
    coco = coco_document(records, scheme)
    assert [i["file_name"] for i in coco["images"]] == ["clip.mp4#frame0", "clip.mp4#frame1"]
    assert coco["annotations"][1]["bbox"] == [1.0, 2.0, 40.0, 50.0] and coco["annotations"][1]["area"] == 2000.0
    rows = list(csv.DictReader(open(tmp_path / "landmarks_openface.csv")))
    assert [(r["frame"], r["face_id"], float(r["timestamp"])) for r in rows] == [("1", "3", 0.0), ("2", "3", 0.04)]
    assert {p.name for p in written} >= {"landmarks_coco.json", "landmarks_openface.csv", "summary.json"}
    assert not (tmp_path / "landmarks.json").exists()
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((20, 20, 3), np.uint8))
    assert predict_main([str(image), "--out", str(tmp_path / "o"), "--format", "json,xml"]) == 2
    assert "--format 'json,xml': choose from json, csv, coco, pts, openface" in capsys.readouterr().err
