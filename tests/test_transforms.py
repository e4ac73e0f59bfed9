"""lgrn.data.transforms: matrices by hand and against cv2, painted dots that must stay under the
transformed landmarks (nearest and bilinear, with and without mirror), the mirror permutation,
seeding, the occluder's visibility flags, blur and the z-score."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from lgrn.data.transforms import (BLUR_GAUSSIAN, BLUR_MOTION, AugmentParams, RawTransform, TestTransform,
                                  TrainTransform, affine_matrix, motion_kernel, normalize_image, occluder_box,
                                  points_in_box, rotation_matrix)
from lgrn.landmarks import get_scheme

SCHEME = get_scheme("wflw98")
RELEASE = dict(crop_size=256, is_color=True, interpolation="nearest", rotation=40, translate_rate=0.1,
               scale_min=0.9314, scale_max=1.0686, mirror=True, is_occluded=False, is_blurred=False)
PAINTED = (0, 16, 33, 54, 60, 76, 90, 96)      # asymmetric on purpose: a missing permutation moves them


def painted_face(height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Background 230, a black 3x3 dot centred on each PAINTED landmark (integer positions within 60 px
    of the centre, >= 14 px apart); other landmarks sit far away in a corner."""
    landmarks = np.full((98, 2), 4.0)
    centre = np.array([width / 2, height / 2])
    chosen: list[np.ndarray] = []
    while len(chosen) < len(PAINTED):
        p = np.round(centre + rng.uniform(-60, 60, 2))
        if np.linalg.norm(p - centre) <= 60 and all(np.linalg.norm(p - q) >= 14 for q in chosen):
            chosen.append(p)
    image = np.full((height, width, 3), 230, np.uint8)
    for index, p in zip(PAINTED, chosen, strict=True):
        landmarks[index] = p
        x, y = int(p[0]), int(p[1])
        image[y - 1:y + 2, x - 1:x + 2] = 0
    return image, landmarks


def assert_dots_under(image: np.ndarray, landmarks: np.ndarray, slots: list[int], tol: float = 1.0) -> None:
    """Dark pixels of channel 0 (below the dot/background midpoint) around each slot's landmark have
    their centroid within ``tol`` px of it, and there are no dark pixels anywhere else."""
    channel = image[0]
    dark = channel < (channel.min() + channel.max()) / 2
    claimed = np.zeros_like(dark)
    for slot in slots:
        x, y = landmarks[slot]
        x0, x1 = int(np.floor(x)) - 5, int(np.floor(x)) + 7
        y0, y1 = int(np.floor(y)) - 5, int(np.floor(y)) + 7
        ys, xs = np.nonzero(dark[y0:y1, x0:x1])
        assert xs.size > 0, f"no dot under landmark slot {slot} at ({x:.1f}, {y:.1f})"
        found = np.array([xs.mean() + x0, ys.mean() + y0])
        assert np.linalg.norm(found - landmarks[slot]) <= tol, (slot, found, landmarks[slot])
        claimed[y0:y1, x0:x1] = True
    assert not (dark & ~claimed).any(), "dark pixels away from every transformed landmark"


def test_rotation_matrix_matches_cv2_and_hand_values():
    for centre, angle, zoom in [((127.5, 127.5), 30.0, 1.1), ((10.0, 50.0), -75.0, 0.93), ((0, 0), 0, 1)]:
        np.testing.assert_allclose(rotation_matrix(centre, angle, zoom),
                                   cv2.getRotationMatrix2D(centre, angle, zoom), atol=1e-12)
    # 90 degrees, zoom 2 about (127.5, 127.5): x' = 2y - 127.5, y' = -2x + 382.5 (counter-clockwise on screen)
    m = affine_matrix(AugmentParams(angle=90.0, zoom=2.0), 256, 256, 256)
    np.testing.assert_allclose(m, [[0, 2, -127.5], [-2, 0, 382.5]], atol=1e-9)
    # a point right of the centre moves up on screen
    assert (m @ [137.5, 127.5, 1])[1] < 127.5


def test_affine_matrix_shift_flip_and_crop_by_hand():
    m = affine_matrix(AugmentParams(shift=(3, -2), zoom=1.0), 256, 256, 256)
    np.testing.assert_allclose(m, [[1, 0, 3], [0, 1, -2]], atol=1e-12)
    m = affine_matrix(AugmentParams(shift=(3, -2), flip=True), 256, 256, 256)
    np.testing.assert_allclose(m, [[-1, 0, 253], [0, 1, -2]], atol=1e-12)          # x' = 256 - (x + 3)
    # zoom 1.5 about (127.5, 127.5) with shift (2, 4) multiplied by the zoom, then a centre crop of a
    # 301 x 281 (w x h) image to 256: offsets (45 // 2, 25 // 2) = (22, 12)
    m = affine_matrix(AugmentParams(zoom=1.5, shift=(2, 4)), 301, 281, 256)
    cx, cy = 150.0, 140.0
    np.testing.assert_allclose(m, [[1.5, 0, -0.5 * cx + 3 - 22], [0, 1.5, -0.5 * cy + 6 - 12]], atol=1e-12)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("size", [(256, 256), (281, 301)])
def test_painted_dots_follow_landmarks(interpolation, flip, size):
    rng = np.random.default_rng([len(interpolation), int(flip), size[1]])
    image, landmarks = painted_face(*size, rng)
    transform = TrainTransform(dict(RELEASE, interpolation=interpolation), SCHEME)
    perm = np.asarray(SCHEME.flip_permutation)
    for _ in range(3):
        params = transform.draw(rng, *size)
        params.flip = flip
        out = transform.apply(image, landmarks, params)
        assert out["image"].shape == (3, 256, 256) and out["image"].dtype == np.float32
        slots = [i for i in range(98) if perm[i] in PAINTED] if flip else list(PAINTED)
        assert_dots_under(out["image"], out["landmarks"], slots)
        # the matrix maps the input landmarks to the output ones (before the index permutation)
        moved = landmarks @ out["matrix"][:, :2].T.astype(np.float64) + out["matrix"][:, 2]
        np.testing.assert_allclose(out["landmarks"], moved[perm] if flip else moved, atol=1e-3)


def test_mirror_moves_left_outer_eye_corner_to_slot_72():
    image = np.full((256, 256, 3), 230, np.uint8)
    landmarks = np.full((98, 2), 4.0)
    landmarks[60] = (100, 120)
    image[119:122, 99:102] = 0
    visibility = np.ones(98, bool)
    visibility[60] = False                                  # e.g. a COFW occlusion flag
    out = TrainTransform(RELEASE, SCHEME).apply(image, landmarks, AugmentParams(flip=True), visibility)
    np.testing.assert_allclose(out["landmarks"][72], (156, 120))   # x' = 256 - 100
    assert_dots_under(out["image"], out["landmarks"], [72], tol=0.01)
    assert not out["visibility"][72] and out["visibility"][60]


def test_same_seed_same_sample_different_seed_differs():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    landmarks = rng.uniform(40, 200, (98, 2))
    transform = TrainTransform(dict(RELEASE, is_occluded=True, is_blurred=True), SCHEME)
    a = transform(image, landmarks, np.random.default_rng(7))
    b = transform(image, landmarks, np.random.default_rng(7))
    c = transform(image, landmarks, np.random.default_rng(8))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["image"], c["image"]) and not np.array_equal(a["landmarks"], c["landmarks"])


def test_parameter_distributions():
    transform = TrainTransform(dict(RELEASE, is_occluded=True, is_blurred=True), SCHEME)
    rng = np.random.default_rng(1)
    params = [transform.draw(rng, 256, 256) for _ in range(2000)]
    angles = np.array([p.angle for p in params])
    zooms = np.array([p.zoom for p in params])
    shifts = np.array([p.shift for p in params])
    assert np.abs(angles).max() <= 40 and np.abs(angles).max() > 38
    assert zooms.min() >= 0.9314 and zooms.max() <= 1.0686
    assert shifts.dtype.kind == "i" and np.abs(shifts).max() == 26        # round(U(-25.6, 25.6))
    for fraction, expected in [(np.mean([p.flip for p in params]), 0.5),
                               (np.mean([p.occluder is not None for p in params]), 0.5),
                               (np.mean([p.blur == BLUR_GAUSSIAN for p in params]), 0.2),
                               (np.mean([p.blur == BLUR_MOTION for p in params]), 0.2)]:
        assert abs(fraction - expected) < 0.04


def test_occluder_box_by_hand():
    # area 0.2 * 256^2 = 13107.2, aspect 1 -> 114.49 x 114.49 around (128, 128): trunc(70.76), trunc(185.24)
    assert occluder_box((128.0, 128.0), 1.0, 256) == (70, 70, 185, 185)
    # aspect 2.5: w = sqrt(2.5 * 13107.2) = 181.02, h = 72.41; clipped at the border
    assert occluder_box((10.0, 250.0), 2.5, 256) == (0, 213, 100, 256)


def test_occluder_paints_box_and_hides_exactly_the_points_inside():
    rng = np.random.default_rng(3)
    transform = TrainTransform(dict(RELEASE, rotation=0, translate_rate=0, scale_min=1, scale_max=1,
                                    mirror=False, is_occluded=True), SCHEME)
    image = np.full((256, 256, 3), 200, np.uint8)
    seen_hidden = 0
    for _ in range(40):
        landmarks = rng.uniform(0, 255, (98, 2))
        params = transform.draw(rng, 256, 256)
        out = transform.apply(image, landmarks, params)
        if params.occluder is None:
            assert out["visibility"].all()
            continue
        x1, y1, x2, y2 = params.occluder
        xs, ys = np.meshgrid(np.arange(256), np.arange(256))
        inside_pixels = (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)
        # the painted region is exactly the half-open box (constant background, so compare with it)
        background = out["image"][0][~inside_pixels][0]
        if params.colour[0] != 200:
            np.testing.assert_array_equal(out["image"][0] != background, inside_pixels)
        nearest = np.floor(landmarks + 0.5).astype(int)
        expected = ~((nearest[:, 0] >= x1) & (nearest[:, 0] < x2) & (nearest[:, 1] >= y1) & (nearest[:, 1] < y2))
        np.testing.assert_array_equal(out["visibility"], expected)
        seen_hidden += int((~expected).sum())
    assert seen_hidden > 20


def test_points_in_box_edges():
    landmarks = np.array([[9.49, 5.0], [9.5, 5.0], [19.49, 5.0], [19.5, 5.0], [12.0, 19.6]])
    np.testing.assert_array_equal(points_in_box(landmarks, (10, 0, 20, 20)), [False, True, True, False, False])


def test_normalize_image_statistics_and_hand_values():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 41, 3), dtype=np.uint8)
    image[..., 2] = 77                                        # constant channel: std 0 -> 1, values 0
    out = normalize_image(image)
    assert out.shape == (3, 37, 41) and out.dtype == np.float32
    np.testing.assert_allclose(out[:2].mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(out[:2].std(axis=(1, 2)), 1, atol=1e-5)           # population std
    np.testing.assert_array_equal(out[2], 0)
    small = np.array([[[0], [2]], [[4], [6]]], np.uint8)      # mean 3, population std sqrt(5), no /255
    np.testing.assert_allclose(normalize_image(small)[0], np.array([[-3, -1], [1, 3]]) / math.sqrt(5), rtol=1e-6)
    with pytest.raises(TypeError):
        normalize_image(image.astype(np.float32))


def test_grayscale_blur_and_motion_kernel():
    np.testing.assert_allclose(motion_kernel(0.0)[2], 0.2)                  # horizontal line of five taps
    assert motion_kernel(0.0).sum() == pytest.approx(1.0) and motion_kernel(0.0)[0].sum() == 0
    np.testing.assert_allclose(motion_kernel(90.0), motion_kernel(0.0).T, atol=1e-7)
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    landmarks = rng.uniform(10, 50, (98, 2))
    param = dict(RELEASE, crop_size=64, is_color=False)
    out = TrainTransform(param, SCHEME).apply(image, landmarks, AugmentParams(blur=BLUR_GAUSSIAN))
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    np.testing.assert_allclose(out["image"], normalize_image(cv2.GaussianBlur(gray, (0, 0), 2.0)), atol=1e-5)
    out = TrainTransform(param, SCHEME).apply(image, landmarks, AugmentParams(blur=BLUR_MOTION, blur_angle=0.0))
    np.testing.assert_allclose(out["image"], normalize_image(cv2.blur(gray, (5, 1))), atol=1e-5)


def test_test_transform_is_identity_with_release_zoom():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    landmarks = rng.uniform(0, 255, (98, 2))
    transform = TestTransform(dict(crop_size=256, is_color=True), SCHEME, zoom=(0.9314 + 1.0686) / 2)
    out = transform(image, landmarks)
    np.testing.assert_array_equal(out["image"], normalize_image(image))
    np.testing.assert_allclose(out["landmarks"], landmarks, atol=1e-4)
    np.testing.assert_array_equal(out["matrix"], np.eye(2, 3))
    # a larger image is centre-cropped: top-left (22, 12) for 301 x 281
    big = rng.integers(0, 256, (281, 301, 3), dtype=np.uint8)
    out = transform(big, landmarks)
    np.testing.assert_array_equal(out["image"], normalize_image(big[12:268, 22:278]))
    np.testing.assert_allclose(out["landmarks"], landmarks - (22, 12), atol=1e-4)
    raw = RawTransform(SCHEME)(image, landmarks)
    assert raw["image"].dtype == np.uint8 and np.array_equal(raw["image"], image)


def test_bad_inputs_raise_clear_errors():
    transform = TrainTransform(RELEASE, SCHEME)
    image = np.zeros((256, 256, 3), np.uint8)
    with pytest.raises(ValueError, match=r"landmarks \[98, 2\]"):
        transform(image, np.zeros((68, 2)), np.random.default_rng(0))
    with pytest.raises(ValueError, match="BGR uint8"):
        transform(image.astype(np.float32), np.zeros((98, 2)), np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        transform(image, np.zeros((98, 2)), 0)
    with pytest.raises(ValueError, match="interpolation"):
        TrainTransform(dict(RELEASE, interpolation="cubic"), SCHEME)
