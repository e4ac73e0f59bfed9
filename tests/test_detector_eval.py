"""Evaluation with detector crops: the face-matching rule and the summary against hand-made cases, the
originals of a prepared list (paths kept inside their root), and `lgrn evaluate --crops detector` end to
end with the shipped model on real 300-W test faces."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lgrn.cli.prepare import main as prepare_main
from lgrn.data.readers import read_release_list
from lgrn.detect import match_faces
from lgrn.cli.evaluate import main as evaluate_main
from lgrn.engine.detector_eval import DetectorEval, faces_from_prepared
from lgrn.pretrained import pretrained_path

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_match_faces_by_hand():
    face_a = np.array([[10.0, 10.0], [50.0, 50.0]])            # landmark box 10..50, side 40
    face_b = np.array([[100.0, 10.0], [140.0, 60.0]])          # side 50
    boxes = np.array([[0, 0, 60, 60],        # centre (30, 30) in a, side 60: a
                      [95, 0, 145, 70],      # centre (120, 35) in b, side 70: b
                      [28, 28, 32, 32],      # centre in a but side 4 < 0.5 x 40: nobody
                      [200, 200, 260, 260]], dtype=float)
    assert match_faces(boxes, [face_a, face_b]) == [0, 1]
    assert match_faces(boxes[2:], [face_a, face_b]) == [None, None]
    # one detection serves one face: two annotations of the same face, one box
    assert match_faces(boxes[:1], [face_a, face_a]) == [0, None]


def test_summary_counts_misses_as_failures():
    result = DetectorEval(names=["a", "b", "c", "d"], nme_io=np.array([0.02, 0.04, 0.2, np.nan]),
                          nme_ip=np.array([0.03, 0.05, 0.3, np.nan]), found=np.array([True, True, True, False]),
                          other_boxes=2, detector="Fake")
    s = result.summary()
    assert (s["faces"], s["found"], s["missed"], s["missed_names"], s["other_boxes"]) == (4, 3, 1, ["d"], 2)
    assert s["nme_io_found"] == pytest.approx(0.26 / 3) and s["nme_ip_found"] == pytest.approx(0.38 / 3)
    assert s["fr_io_found"] == pytest.approx(1 / 3) and s["fr_io"] == pytest.approx(2 / 4)


@pytest.fixture(scope="module")
def prepared(shared_data, tmp_path_factory):
    """Six real 300-W common test faces in the official layout, prepared at the shipped model's 128 px."""
    root = tmp_path_factory.mktemp("raw")
    source = shared_data / "300w_recropped" / "lfpw" / "testset"
    (root / "lfpw" / "testset").mkdir(parents=True)
    for pts in sorted(source.glob("*.pts"))[:6]:
        shutil.copy(pts, root / "lfpw" / "testset")
        shutil.copy(pts.with_suffix(".jpg"), root / "lfpw" / "testset")
    out = tmp_path_factory.mktemp("data")
    assert prepare_main(["300w", "--root", str(root), "--out", str(out), "--size", "128", "--no-progress"]) == 0
    return root, out


def test_originals_of_a_prepared_list_stay_inside_their_root(prepared, tmp_path):
    root, out = prepared
    listed = out / "test" / "test_68pt.txt"
    samples = read_release_list(out / "test" / "Image", listed, 68)
    faces = faces_from_prepared(samples, listed, root)
    assert [f[1] for f in faces] == [(root / s.name).resolve() for s in samples]
    # the landmarks come back to the original image's pixels (the .pts, 1-based)
    first = np.loadtxt(root / samples[0].name.replace(".jpg", ".pts"), skiprows=3, max_rows=68) - 1
    np.testing.assert_allclose(faces[0][2], first, atol=1e-4)
    sidecar = out / "test" / "test_68pt_crops.jsonl"
    bad = tmp_path / "test_68pt.txt"
    shutil.copy(listed, bad)
    lines = sidecar.read_text().splitlines()
    lines[0] = lines[0].replace('"original": "lfpw/', '"original": "../../lfpw/')
    (tmp_path / "test_68pt_crops.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="field 'original' '../../lfpw/testset/.*' leaves the images root"):
        faces_from_prepared(samples, bad, root)
    with pytest.raises(FileNotFoundError, match="is --images-root the folder given to `lgrn prepare --root`"):
        faces_from_prepared(samples, listed, tmp_path)


def test_evaluate_with_detector_crops_end_to_end(prepared, tmp_path, capsys):
    root, out = prepared
    expname = tmp_path / "eval"
    code = evaluate_main(["--load_path", str(pretrained_path()), "--expname", str(expname), "--no-progress",
                          "--crops", "detector", "--images-root", str(root),
                          "--set", f"test_param.val_root={out / 'test' / 'Image'}",
                          "--set", f"test_param.val_source={out / 'test' / 'test_68pt.txt'}"])
    assert code == 0
    summary = json.loads((expname / "detector_crops.json").read_text())
    assert summary["detector"] == "RetinaFaceDetector" and (summary["faces"], summary["found"]) == (6, 6)
    assert summary["nme_io_found"] < 0.08 and summary["gt_crops_nme_io"] < 0.08
    assert json.loads((expname / "analysis.json").read_text())["overall"]["count"] == 6
    with pytest.raises(SystemExit):
        evaluate_main(["--load_path", str(pretrained_path()), "--expname", str(expname), "--crops", "detector"])
    assert "--crops detector needs --images-root" in capsys.readouterr().err
