"""RetinaFace: anchors, decoding and NMS against hand-computed values; the model read from the installed
package (SHA-256 checked, never imported); real faces found on the shared samples with their five points
on the annotated eyes; the box calibration against the training crop; the default detector and its
fallback to Haar."""
from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

from lgrn import detect
from lgrn.data.readers import read_300w, read_wflw_official
from lgrn.detect import HaarFaceDetector, RetinaFaceDetector, box_iou, default_detector
from lgrn.detect import retinaface
from lgrn.geometry import landmark_box, square_box_from_bbox
from lgrn.images import read_image


@pytest.fixture(scope="module")
def detector():
    return RetinaFaceDetector(threads=1)


def test_anchors_by_hand():
    a = retinaface.anchors(16, 24)
    # stride 8: 2 x 3 cells, stride 16: 1 x 2, stride 32: 1 x 1; two sizes per cell
    assert a.shape == ((6 + 2 + 1) * 2, 4)
    np.testing.assert_array_equal(a[:4], [[4, 4, 16, 16], [4, 4, 32, 32], [12, 4, 16, 16], [12, 4, 32, 32]])
    np.testing.assert_array_equal(a[6:8], [[4, 12, 16, 16], [4, 12, 32, 32]])        # second row of cells
    np.testing.assert_array_equal(a[12:16], [[8, 8, 64, 64], [8, 8, 128, 128], [24, 8, 64, 64], [24, 8, 128, 128]])
    np.testing.assert_array_equal(a[16:], [[16, 16, 256, 256], [16, 16, 512, 512]])


def test_anchor_count_matches_the_network(detector):
    for height, width in ((100, 150), (64, 64), (37, 211)):
        loc, _, _ = detector.session.run(None, {"input": np.zeros((1, 3, height, width), np.float32)})
        assert loc.shape[1] == len(retinaface.anchors(height, width)), (height, width)


def test_decode_by_hand():
    priors = np.array([[10.0, 20.0, 16.0, 16.0]])
    boxes, points = retinaface.decode(np.zeros((1, 4)), np.zeros((1, 10)), priors)
    np.testing.assert_allclose(boxes, [[2, 12, 18, 28]])
    np.testing.assert_allclose(points, np.tile([[10.0, 20.0]], (1, 5, 1)))
    # centre moves 0.1 x d x anchor size; the size scales by exp(0.2 d)
    boxes, points = retinaface.decode(np.array([[1.0, -2.0, np.log(2) / 0.2, 0.0]]),
                                      np.array([[1.0, 0, 0, 1.0, 0, 0, 0, 0, 0, 0]]), priors)
    np.testing.assert_allclose(boxes, [[11.6 - 16, 16.8 - 8, 11.6 + 16, 16.8 + 8]])
    np.testing.assert_allclose(points[0, :2], [[11.6, 20.0], [10.0, 21.6]])


def test_nms_by_hand():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10.0]])
    scores = np.array([0.9, 0.95, 0.8, 0.5])
    # box 1 wins; box 0 overlaps it by IoU 9/11 > 0.4 and goes, box 3 likewise; box 2 is apart
    np.testing.assert_array_equal(retinaface.nms(boxes, scores, 0.4), [1, 2])
    # at 0.9, box 0 (IoU 0.82 with box 1) stays and box 3, its duplicate (IoU 1), goes
    np.testing.assert_array_equal(retinaface.nms(boxes, scores, 0.9), [1, 0, 2])
    np.testing.assert_array_equal(retinaface.nms(boxes[[0, 3]], scores[[0, 3]], 0.99), [0])   # identical boxes


def test_model_is_read_not_imported_and_checked(tmp_path, monkeypatch):
    retinaface._MODEL = None
    data = retinaface.model_bytes()
    assert len(data) > 1_000_000 and "retinaface" not in sys.modules
    fake = tmp_path / "weights.py"
    fake.write_text("WEIGHTS = b'not the model'\n")
    monkeypatch.setattr(retinaface, "_MODEL", None)
    monkeypatch.setattr(retinaface, "_weights_file", lambda: fake)
    with pytest.raises(ValueError, match=f"{fake}: the model's SHA-256"):
        retinaface.model_bytes()
    fake.write_text("import os\nWEIGHTS = os.urandom(3)\n")          # code is never run, only literals read
    with pytest.raises(ValueError, match="expected one bytes literal WEIGHTS"):
        retinaface.model_bytes()


def _eye_centres(landmarks: np.ndarray) -> np.ndarray:
    """(subject's right eye, left eye) centres of 68 points; for 98 points the WFLW pupils 96 / 97."""
    if len(landmarks) == 98:
        return landmarks[[96, 97]]
    return np.stack([landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)])


def test_finds_every_annotated_sample_face_with_eyes_in_place(detector, shared_data):
    faces = read_wflw_official(shared_data / "wflw" / "list_98pt_rect_attr_test.txt", shared_data / "wflw" / "WFLW_images")
    with pytest.warns(UserWarning, match="skipped missing folder"):   # the samples hold LFPW train only
        faces += read_300w(shared_data / "300w", "train")
    assert len(faces) == 20
    found = 0
    for sample in faces:
        boxes, scores, points = detector.detect_faces(read_image(sample.image_path))
        gt = np.asarray(sample.landmarks)
        iou = box_iou(boxes, landmark_box(gt)[None])[:, 0]
        if iou.size and iou.max() > 0.3:
            found += 1
            best = int(iou.argmax())
            assert scores[best] >= 0.8
            eyes = _eye_centres(gt)
            inter_ocular = np.linalg.norm(eyes[0] - eyes[1])
            # the detector's points 0 and 1 are the eyes (image left first, i.e. the subject's right)
            error = np.linalg.norm(points[best, :2] - eyes, axis=1) / inter_ocular
            assert error.max() < 0.35, (sample.name, error)
    assert found == 20
    # the Haar cascade misses some of them (measured: 15 of 20)
    haar = HaarFaceDetector()
    haar_found = sum(bool(len(b := haar.detect(read_image(s.image_path))))
                     and box_iou(b, landmark_box(np.asarray(s.landmarks))[None]).max() > 0.3 for s in faces)
    assert haar_found < found


def test_calibrated_crop_matches_the_training_crop(detector, shared_data):
    faces = read_300w(shared_data / "300w_recropped", "common")[::20]
    ious = []
    for sample in faces:
        boxes = detector.detect(read_image(sample.image_path))
        target = square_box_from_bbox(landmark_box(np.asarray(sample.landmarks)), 1.2)
        crops = detector.calibration.crop_boxes(boxes)
        ious.append(box_iou(crops, target[None]).max())
    assert np.mean(ious) > 0.85 and np.min(ious) > 0.6, ious


def test_default_detector_and_its_fallback(monkeypatch, caplog):
    assert isinstance(default_detector(), RetinaFaceDetector)
    assert isinstance(default_detector("haar"), HaarFaceDetector)
    assert default_detector(min_size=30).min_size == 30
    with pytest.raises(ValueError, match="unknown face detector 'yolo'"):
        default_detector("yolo")
    monkeypatch.setattr(detect, "retinaface_available", lambda: "onnxruntime is not installed")
    monkeypatch.setattr(detect, "_fallback_logged", False)
    with caplog.at_level(logging.WARNING, logger="lgrn"):
        assert isinstance(default_detector(), HaarFaceDetector)
        assert isinstance(default_detector(), HaarFaceDetector)
    assert [r.getMessage() for r in caplog.records] == [
        "face detector: using OpenCV's Haar cascade, which misses more faces: onnxruntime is not installed"]
    with pytest.raises(FileNotFoundError, match="RetinaFace detector cannot run: onnxruntime is not installed"):
        default_detector("retinaface")
