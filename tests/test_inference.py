"""FaceAligner with a random-weights checkpoint: result types and shapes, the no-face case, every image
input type, landmarks mapped back to image pixels (by hand and against a manual crop round trip), and
batching across images equal to one-by-one prediction."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import lgrn
from lgrn.detect import BoxCalibration, CallableDetector
from lgrn.geometry import apply_affine, crop_matrix, cut_crop, invert_affine, square_box_from_bbox
from lgrn.images import ImageReadError, normalize_image, read_image
from lgrn.inference import FaceAligner, FaceLandmarks
from lgrn.landmarks import get_scheme

SIZE = 128

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(small_checkpoint):
    return small_checkpoint


@pytest.fixture(scope="module")
def aligner(checkpoint):
    return FaceAligner.from_checkpoint(checkpoint, device="cpu")


@pytest.fixture(scope="module")
def face_image(shared_data):
    return read_image(shared_data / "300w" / "lfpw" / "trainset" / "image_0002.png")   # 450 x 300 BGR


BOXES = np.array([[80.0, 120.0, 220.0, 270.0], [30.0, 40.0, 100.0, 100.0]])


def test_result_types_and_shapes(aligner, face_image, shared_data):
    result = aligner.predict(shared_data / "300w" / "lfpw" / "trainset" / "image_0002.png", boxes=BOXES)
    assert isinstance(result, FaceLandmarks) and len(result) == 2
    assert result.landmarks.shape == (2, 98, 2) and result.landmarks.dtype == np.float32
    assert result.boxes.dtype == np.float32 and result.crop_boxes.shape == (2, 4)
    np.testing.assert_allclose(result.boxes, BOXES)
    np.testing.assert_allclose(result.crop_boxes[0], square_box_from_bbox(BOXES[0], 1.2), atol=1e-4)
    assert result.scheme == "wflw98" and result.image_size == face_image.shape[:2]
    assert np.all(np.isfinite(result.landmarks))
    several = aligner.predict([face_image, face_image], boxes=[BOXES, BOXES[:1]], color="bgr")
    assert isinstance(several, list) and [len(r) for r in several] == [2, 1]


def test_no_face_is_an_empty_result_not_none(aligner, face_image):
    empty = aligner.predict(face_image, boxes=np.zeros((0, 4)), color="bgr")
    assert isinstance(empty, FaceLandmarks) and len(empty) == 0
    assert empty.landmarks.shape == (0, 98, 2) and empty.boxes.shape == (0, 4)
    # detector path: a flat grey image has no face
    detected = aligner.predict(np.full((90, 120, 3), 127, np.uint8))
    assert detected.landmarks.shape == (0, 98, 2) and detected.scheme == "wflw98"


def test_every_input_type_gives_the_same_numbers(aligner, face_image, tmp_path):
    box = BOXES[:1]
    reference = aligner.predict(face_image, boxes=box, color="bgr").landmarks
    rgb = face_image[:, :, ::-1].copy()
    same = {
        "rgb array": aligner.predict(rgb, boxes=box).landmarks,
        "pil": aligner.predict(Image.fromarray(rgb), boxes=box).landmarks,
        "rgba array": aligner.predict(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), boxes=box).landmarks,
        "16-bit array": aligner.predict(rgb.astype(np.uint16) * 257, boxes=box).landmarks,
    }
    for name, landmarks in same.items():
        np.testing.assert_allclose(landmarks, reference, atol=1e-5, err_msg=name)
    # grayscale inputs: replicated to three channels, which is what a colour model then sees
    gray = face_image.mean(axis=2).round().astype(np.uint8)
    as_color = aligner.predict(np.dstack([gray] * 3), boxes=box, color="bgr").landmarks
    np.testing.assert_allclose(aligner.predict(gray, boxes=box).landmarks, as_color, atol=1e-5)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    np.testing.assert_allclose(aligner.predict(tmp_path / "gray.png", boxes=box).landmarks, as_color, atol=1e-5)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match="broken.jpg"):
        aligner.predict(tmp_path / "broken.jpg", boxes=box)
    with pytest.raises(TypeError, match="float32"):
        aligner.predict(np.zeros((10, 10, 3), np.float32), boxes=box)


def test_landmarks_map_back_by_hand():
    """A stand-in network that always answers the crop's corners: they must land on the crop box corners."""
    corners = np.array([[[0.0, 0.0], [SIZE, SIZE], [SIZE / 2, SIZE / 4]]], dtype=np.float32)
    scheme = type("S", (), {"name": "three", "num_landmarks": 3})()
    aligner = FaceAligner(lambda x: np.repeat(corners, len(x), axis=0), scheme, SIZE)
    image = np.zeros((300, 400, 3), np.uint8)
    result = aligner.predict(image, boxes=[[100, 50, 200, 130]], color="bgr")   # side 100 -> crop side 120
    np.testing.assert_allclose(result.crop_boxes, [[90, 30, 210, 150]], atol=1e-4)
    np.testing.assert_allclose(result.landmarks[0], [[90, 30], [210, 150], [150, 60]], atol=1e-4)
    # refine: re-crop on the landmark box of the prediction (square, 1.2 x) and predict again
    refined = FaceAligner(aligner.network, scheme, SIZE, refine=1).predict(image, boxes=[[100, 50, 200, 130]],
                                                                           color="bgr")
    # first pass: landmark box (90, 30)-(210, 150) -> crop side 144 centred (150, 90) -> (78, 18)-(222, 162)
    np.testing.assert_allclose(refined.crop_boxes, [[78, 18, 222, 162]], atol=1e-4)
    np.testing.assert_allclose(refined.landmarks[0], [[78, 18], [222, 162], [150, 54]], atol=1e-4)


def test_crop_round_trip_matches_a_manual_pipeline(aligner, checkpoint, face_image):
    """FaceAligner = crop as in training + model + inverse crop transform, to 0.01 px."""
    model = lgrn.load_model(checkpoint)
    outputs = []
    for box in BOXES:
        crop_box = square_box_from_bbox(box, 1.2)
        matrix = crop_matrix(crop_box, SIZE)
        crop = cut_crop(face_image, matrix, SIZE)
        with torch.no_grad():
            in_crop = model(torch.from_numpy(normalize_image(crop))[None])[0].numpy()
        outputs.append(in_crop)
        expected = apply_affine(in_crop, invert_affine(matrix))
        got = aligner.predict(face_image, boxes=box[None], color="bgr").landmarks[0]
        assert np.abs(got - expected).max() <= 0.01
        # and forwards again: the image-pixel landmarks land back on the network's crop output
        assert np.abs(apply_affine(got, matrix) - in_crop).max() <= 0.01
    # not vacuous: the network answers differently for different crops
    assert np.abs(outputs[0] - outputs[1]).max() > 0.5


def test_translation_moves_landmarks_exactly(aligner, face_image):
    """Shift the image by whole pixels and the box with it: identical crops, landmarks shifted exactly."""
    box = np.array([[100.0, 140.0, 190.0, 230.0]])       # crop side 108 < 128: no pre-shrinking
    dx, dy = 37, 11
    shifted = np.zeros((face_image.shape[0] + dy, face_image.shape[1] + dx, 3), np.uint8)
    shifted[dy:, dx:] = face_image
    a = aligner.predict(face_image, boxes=box, color="bgr").landmarks
    b = aligner.predict(shifted, boxes=box + [dx, dy, dx, dy], color="bgr").landmarks
    assert np.abs(b - a - [dx, dy]).max() <= 0.01


def test_batching_equals_one_by_one(checkpoint, face_image):
    images = [face_image, face_image[::-1].copy(), face_image[:, ::-1].copy()]
    boxes = [BOXES, BOXES[::-1] + 5, BOXES[:1] - 3]
    batched = FaceAligner.from_checkpoint(checkpoint, batch_size=3).predict(images, boxes=boxes, color="bgr")
    single = FaceAligner.from_checkpoint(checkpoint, batch_size=1)
    for image, box, result in zip(images, boxes, batched):
        alone = single.predict(image, boxes=box, color="bgr")
        np.testing.assert_allclose(result.landmarks, alone.landmarks, atol=1e-3)
    # faces of different images really went through one network call
    calls = []
    counting = FaceAligner(lambda x: calls.append(len(x)) or np.zeros((len(x), 98, 2), np.float32),
                           get_scheme("wflw98"), SIZE, batch_size=4)
    counting.predict(images, boxes=boxes, color="bgr")
    assert calls == [4, 1]


def test_detector_plugs_in(checkpoint, face_image):
    detector = CallableDetector(lambda image: BOXES, BoxCalibration(1.2, 0.0, 0.0))
    aligner = FaceAligner.from_checkpoint(checkpoint, detector=detector)
    detected = aligner.predict(face_image, color="bgr")
    given = aligner.predict(face_image, boxes=BOXES, color="bgr")
    np.testing.assert_allclose(detected.landmarks, given.landmarks, atol=1e-5)
    np.testing.assert_allclose(detected.boxes, BOXES)
