"""lgrn.geometry: hand-computed boxes and matrices, inverse/compose round trips, and painted images that
must land where apply_affine says."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from lgrn.geometry import (apply_affine, compose_affine, crop_matrix, invert_affine, landmark_box,
                           square_box_from_bbox, square_crop_box, warp)


def blob_image(height: int, width: int, centre: tuple[float, float], sigma: float = 2.0) -> np.ndarray:
    """Float image with a Gaussian blob centred at ``centre`` (x, y), pixel centres at integers."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma ** 2))


def centroid(image: np.ndarray) -> np.ndarray:
    """Intensity-weighted centroid (x, y) of a single-channel image."""
    ys, xs = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    total = image.sum()
    return np.array([(xs * image).sum() / total, (ys * image).sum() / total])


def test_boxes_by_hand():
    landmarks = np.array([[10.0, 20.0], [30.0, 60.0], [12.0, 33.0]])
    np.testing.assert_allclose(landmark_box(landmarks), [10, 20, 30, 60])
    # w = 20, h = 40 -> side 1.2 * 40 = 48 around the centre (20, 40)
    np.testing.assert_allclose(square_crop_box(landmarks), [-4, 16, 44, 64])
    np.testing.assert_allclose(square_crop_box(landmarks, scale=1.0), [0, 20, 40, 60])
    np.testing.assert_allclose(square_box_from_bbox([0, 0, 10, 4], 2.0), [-5, -8, 15, 12])


def test_crop_matrix_by_hand():
    matrix = crop_matrix([-4, 16, 44, 64], 96)  # side 48 -> scale 2
    np.testing.assert_allclose(matrix, [[2, 0, 8], [0, 2, -32]])
    np.testing.assert_allclose(apply_affine(np.array([10.0, 20.0]), matrix), [28, 8])
    np.testing.assert_allclose(apply_affine(np.array([[-4.0, 16.0], [44.0, 64.0]]), matrix), [[0, 0], [96, 96]])
    # non-square output: scaled per axis
    np.testing.assert_allclose(crop_matrix([0, 0, 10, 20], (20, 10)), [[2, 0, 0], [0, 0.5, 0]])


def test_crop_matrix_inverse_round_trip():
    rng = np.random.default_rng(0)
    landmarks = rng.uniform(50, 400, size=(98, 2))
    matrix = crop_matrix(square_crop_box(landmarks), 256)
    inverse = invert_affine(matrix)
    np.testing.assert_allclose(apply_affine(apply_affine(landmarks, matrix), inverse), landmarks, atol=1e-9)
    np.testing.assert_allclose(compose_affine(inverse, matrix), [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    crop_points = apply_affine(landmarks, matrix)
    assert crop_points.min() >= 0 and crop_points.max() <= 256  # the landmark box lies inside the crop


def test_compose_is_a_after_b_and_batched_points():
    a = np.array([[0.0, -1.0, 5.0], [1.0, 0.0, 2.0]])  # rotate 90 degrees, shift (5, 2)
    b = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, -1.0]])
    point = np.array([1.0, 1.0])  # b -> (3, 2); a -> (-2 + 5, 3 + 2) = (3, 5)
    np.testing.assert_allclose(apply_affine(point, compose_affine(a, b)), [3, 5])
    batch = np.zeros((4, 7, 2))
    assert apply_affine(batch, a).shape == (4, 7, 2)
    np.testing.assert_allclose(apply_affine(batch, a)[2, 3], [5, 2])


def test_invalid_inputs_raise_clearly():
    with pytest.raises(ValueError, match="singular"):
        invert_affine(np.array([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0]]))
    with pytest.raises(ValueError, match=r"\[2, 3\]"):
        apply_affine(np.zeros((3, 2)), np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        landmark_box(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="positive"):
        square_crop_box(np.array([[3.0, 3.0], [3.0, 3.0]]))
    with pytest.raises(ValueError, match="interpolation"):
        warp(np.zeros((4, 4), np.uint8), np.eye(2, 3), 4, interpolation="cubic")


@pytest.mark.parametrize("kind", ["crop", "rotation"])
def test_painted_dot_lands_where_apply_affine_says(kind):
    dot = (137.0, 83.0)
    image = (blob_image(200, 300, dot) * 255).astype(np.float32)
    if kind == "crop":
        matrix = crop_matrix([100.0, 40.0, 180.0, 120.0], 160)  # x2 zoom
    else:
        matrix = cv2.getRotationMatrix2D((150.0, 100.0), 33.0, 0.8)
        matrix[:, 2] += (-20.0, 15.0)
    out = warp(image, matrix, (240, 220))
    expected = apply_affine(np.array(dot), matrix)
    # well inside the required 0.5 px: a half-pixel convention slip (x + 0.5) would miss by ~0.5 px here
    assert np.linalg.norm(centroid(out) - expected) <= 0.05
    # the brightest pixel is the one nearest the mapped point
    peak = np.unravel_index(np.argmax(out), out.shape)
    assert np.hypot(peak[1] - expected[0], peak[0] - expected[1]) <= 1.0


def test_warp_nearest_moves_single_pixels_exactly_and_fills_border_per_channel():
    image = np.zeros((10, 12, 3), np.uint8)
    image[4, 7] = (10, 20, 30)
    matrix = np.array([[1.0, 0.0, 3.0], [0.0, 1.0, -2.0]])  # integer shift: (7, 4) -> (10, 2)
    out = warp(image, matrix, (16, 10), interpolation="nearest", border_value=127)
    assert out.shape == (10, 16, 3)
    np.testing.assert_array_equal(out[2, 10], (10, 20, 30))
    np.testing.assert_array_equal(out[0, 0], (127, 127, 127))  # comes from x = -3: outside the source
    np.testing.assert_array_equal(out[5, 5], (0, 0, 0))
    np.testing.assert_array_equal(warp(image, matrix, 16, border_value=(1, 2, 3))[0, 0], (1, 2, 3))
    gray = warp(image[:, :, 0], matrix, 16, interpolation="nearest")
    assert gray.shape == (16, 16) and gray[2, 10] == 10
