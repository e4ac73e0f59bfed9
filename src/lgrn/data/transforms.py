"""Training and test transforms on numpy BGR images, as released (docs/augmentation.md; docs/deviations.md,
release bug 5): random affine about the image centre (rotation, zoom, integer shift) with an optional
mirror after it, one warp with border value 127 (nearest interpolation reproduces the release's
warpAffine argument bug, bilinear is the documented fix), centre crop, a random single-colour occluder
that also marks the landmarks it covers as not visible, optional blur, optional grayscale and the per-image per-channel
z-score. All randomness comes from an explicit ``np.random.Generator``; parameters are drawn into an
:class:`AugmentParams` first and applied second, so the GPU path (``gpu_augment``) can be checked against
this one for identical parameters. Every output carries the 2x3 affine ``matrix`` from the input image to
the network input, mirror and crop included.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..geometry import INTERPOLATIONS
from ..images import normalize_image  # the network-input convention has one definition, in lgrn.images
from ..landmarks import Scheme

BORDER_VALUE = 127
OCCLUDER_PROB = 0.5            # the release draws uniform() > 0.5
OCCLUDER_AREA = 0.2            # fraction of the crop area
OCCLUDER_ASPECT = (0.4, 2.5)
BLUR_PROB = 0.2                # each of Gaussian and motion blur
GAUSSIAN_SIGMA = 2.0
MOTION_KERNEL_SIZE = 5
BLUR_NONE, BLUR_GAUSSIAN, BLUR_MOTION = 0, 1, 2


def rotation_matrix(centre: tuple[float, float], angle: float, zoom: float) -> np.ndarray:
    """``cv2.getRotationMatrix2D(centre, angle, zoom)`` as float64 ``[2, 3]``: positive angle (degrees)
    turns the image counter-clockwise on screen."""
    a = math.radians(angle)
    alpha, beta = zoom * math.cos(a), zoom * math.sin(a)
    cx, cy = centre
    return np.array([[alpha, beta, (1.0 - alpha) * cx - beta * cy],
                     [-beta, alpha, beta * cx + (1.0 - alpha) * cy]], dtype=np.float64)


@dataclass
class AugmentParams:
    """One sample's augmentation. ``shift`` is the integer (dx, dy) before zoom; ``occluder`` is the
    filled box (x1, y1, x2, y2) in crop pixels, half-open (columns x1..x2-1), or None; ``colour`` its
    BGR value; ``blur`` is BLUR_NONE / BLUR_GAUSSIAN / BLUR_MOTION, ``blur_angle`` the motion direction."""

    angle: float = 0.0
    zoom: float = 1.0
    shift: tuple[int, int] = (0, 0)
    flip: bool = False
    occluder: tuple[int, int, int, int] | None = None
    colour: tuple[int, int, int] = (0, 0, 0)
    blur: int = BLUR_NONE
    blur_angle: float = 0.0


def affine_matrix(params: AugmentParams, width: int, height: int, crop_size: int) -> np.ndarray:
    """Input-image pixels -> network-input pixels, float64 ``[2, 3]``: the release's rotation/zoom about
    (w/2 - 0.5, h/2 - 0.5), shift times zoom, the mirror x' = w - x after it (w, not w - 1, as released)
    and the centre crop (top-left ((w - S) // 2, (h - S) // 2)) folded in."""
    m = rotation_matrix((width / 2 - 0.5, height / 2 - 0.5), params.angle, params.zoom)
    m[:, 2] += np.asarray(params.shift, dtype=np.float64) * params.zoom
    if params.flip:
        m[0, :2] = -m[0, :2]
        m[0, 2] = width - m[0, 2]
    m[0, 2] -= (width - crop_size) // 2
    m[1, 2] -= (height - crop_size) // 2
    return m


def occluder_box(centre: tuple[float, float], aspect: float, crop_size: int) -> tuple[int, int, int, int]:
    """The release's rectangle: area 20 % of the crop, width sqrt(aspect * area), height width / aspect,
    corners truncated to int and clipped to [0, S]."""
    area = OCCLUDER_AREA * crop_size * crop_size
    w = math.sqrt(aspect * area)
    h = w / aspect
    cx, cy = centre
    box = (math.trunc(cx - w / 2), math.trunc(cy - h / 2), math.trunc(cx + w / 2), math.trunc(cy + h / 2))
    return tuple(min(max(v, 0), crop_size) for v in box)  # type: ignore[return-value]


def points_in_box(landmarks: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """``[K]`` bool: the pixel under each landmark (nearest pixel centre) is inside the half-open box."""
    x1, y1, x2, y2 = box
    px = np.floor(landmarks[:, 0] + 0.5)
    py = np.floor(landmarks[:, 1] + 0.5)
    return (px >= x1) & (px < x2) & (py >= y1) & (py < y2)


def motion_kernel(angle: float, size: int = MOTION_KERNEL_SIZE) -> np.ndarray:
    """float32 ``[size, size]`` line kernel through the centre at ``angle`` degrees: weight
    max(0, 1 - distance to the line), normalised to sum 1 (a 1-px anti-aliased line; the same formula
    is used on the GPU)."""
    r = size // 2
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float64)
    a = math.radians(angle)
    dist = np.abs(-math.sin(a) * dx + math.cos(a) * dy)
    kernel = np.maximum(0.0, 1.0 - dist)
    return (kernel / kernel.sum()).astype(np.float32)


def check_inputs(image: np.ndarray, landmarks: np.ndarray, num_landmarks: int) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a BGR uint8 image [H, W, 3], got "
                         f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}")
    if landmarks.shape != (num_landmarks, 2):
        raise ValueError(f"expected landmarks [{num_landmarks}, 2], got {tuple(landmarks.shape)}")


class _AffineTransform:
    """Shared apply step of the train and test transforms."""

    def __init__(self, scheme: Scheme, crop_size: int, is_color: bool, interpolation: str) -> None:
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {tuple(INTERPOLATIONS)}, got {interpolation!r}")
        self.scheme = scheme
        self.num_landmarks = scheme.num_landmarks
        self.flip_permutation = np.asarray(scheme.flip_permutation, dtype=np.int64)
        self.crop_size = int(crop_size)
        self.is_color = bool(is_color)
        self.interpolation = interpolation

    def apply(self, image: np.ndarray, landmarks: np.ndarray, params: AugmentParams,
              visibility: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Apply fixed parameters: image BGR uint8 ``[H, W, 3]``, landmarks ``[K, 2]`` -> dict(image
        float32 ``[C, S, S]``, landmarks float32 ``[K, 2]``, visibility bool ``[K]``, matrix float32
        ``[2, 3]``)."""
        landmarks = np.asarray(landmarks, dtype=np.float64)
        check_inputs(image, landmarks, self.num_landmarks)
        visibility = (np.ones(self.num_landmarks, dtype=bool) if visibility is None
                      else np.asarray(visibility, dtype=bool).reshape(self.num_landmarks))
        height, width = image.shape[:2]
        size = self.crop_size
        m = affine_matrix(params, width, height, size)
        if (height, width) == (size, size) and np.array_equal(m, np.eye(2, 3)):
            warped = image.copy()                       # identity (the test transform): skip the warp
        else:
            warped = cv2.warpAffine(image, m, (size, size), flags=INTERPOLATIONS[self.interpolation],
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=(BORDER_VALUE,) * 3)
        out_landmarks = landmarks @ m[:, :2].T + m[:, 2]
        if params.flip:
            out_landmarks = out_landmarks[self.flip_permutation]
            visibility = visibility[self.flip_permutation]
        if params.occluder is not None:
            x1, y1, x2, y2 = params.occluder
            warped[y1:y2, x1:x2] = params.colour
            visibility = visibility & ~points_in_box(out_landmarks, params.occluder)
        if not self.is_color:
            warped = cv2.cvtColor(warped, cv2.COLOR_BGR2GRAY)
        if params.blur == BLUR_GAUSSIAN:
            warped = cv2.GaussianBlur(warped, (0, 0), GAUSSIAN_SIGMA)
        elif params.blur == BLUR_MOTION:
            warped = cv2.filter2D(warped, -1, motion_kernel(params.blur_angle))
        return {"image": normalize_image(warped), "landmarks": out_landmarks.astype(np.float32),
                "visibility": visibility, "matrix": m.astype(np.float32)}


def augment_settings(train_param: dict) -> dict:
    """The release's augmentation switches of ``train_param`` with their defaults (CPU and GPU paths)."""
    return {"rotation": float(train_param.get("rotation", 0.0)),
            "translate_rate": float(train_param.get("translate_rate", 0.0)),
            "scale_min": float(train_param.get("scale_min", 1.0)),
            "scale_max": float(train_param.get("scale_max", 1.0)),
            "mirror": bool(train_param.get("mirror", False)),
            "is_occluded": bool(train_param.get("is_occluded", False)),
            "is_blurred": bool(train_param.get("is_blurred", False))}


class TrainTransform(_AffineTransform):
    """The release's training augmentation, configured by ``train_param`` (rotation, translate_rate,
    scale_min/max, mirror, is_occluded, is_blurred, interpolation, crop_size, is_color).

    ``transform(image, landmarks, rng, visibility=None)`` -> dict as :meth:`apply`."""

    def __init__(self, train_param: dict, scheme: Scheme) -> None:
        super().__init__(scheme, train_param["crop_size"], train_param["is_color"],
                         train_param.get("interpolation", "nearest"))
        for key, value in augment_settings(train_param).items():
            setattr(self, key, value)
        if self.scale_min > self.scale_max or self.scale_min <= 0:
            raise ValueError(f"train_param: need 0 < scale_min <= scale_max, got {self.scale_min}, {self.scale_max}")

    def draw(self, rng: np.random.Generator, height: int, width: int) -> AugmentParams:
        """Draw one sample's parameters (fixed draw order: angle, dx, dy, zoom, flip, occluder, blur)."""
        p = AugmentParams()
        p.angle = float(rng.uniform(-self.rotation, self.rotation))
        # As released, dx uses the image height and dy the width (identical for square crops).
        p.shift = (int(round(rng.uniform(-self.translate_rate * height, self.translate_rate * height))),
                   int(round(rng.uniform(-self.translate_rate * width, self.translate_rate * width))))
        p.zoom = float(rng.uniform(self.scale_min, self.scale_max))
        p.flip = self.mirror and bool(rng.uniform() > 0.5)
        if self.is_occluded and rng.uniform() > OCCLUDER_PROB:
            aspect = float(rng.uniform(*OCCLUDER_ASPECT))
            centre = (float(rng.uniform(0, self.crop_size)), float(rng.uniform(0, self.crop_size)))
            p.occluder = occluder_box(centre, aspect, self.crop_size)
            p.colour = tuple(int(c) for c in rng.integers(0, 256, size=3))  # type: ignore[assignment]
        if self.is_blurred:
            u = rng.uniform()
            if u < BLUR_PROB:
                p.blur = BLUR_GAUSSIAN
            elif u < 2 * BLUR_PROB:
                p.blur = BLUR_MOTION
                p.blur_angle = float(rng.uniform(0.0, 180.0))
        return p

    def __call__(self, image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator,
                 visibility: np.ndarray | None = None) -> dict[str, np.ndarray]:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"TrainTransform needs an np.random.Generator, got {type(rng).__name__}")
        params = self.draw(rng, image.shape[0], image.shape[1])
        return self.apply(image, landmarks, params, visibility)


class TestTransform(_AffineTransform):
    """The release's test transform: identity geometry (zoom ``(scale_min + scale_max) / 2``, which is
    exactly 1 for the released config, no shift, no mirror), centre crop, same normalisation.

    ``zoom`` defaults to test_param's scale_min/max when present (the release reads train_param's; pass
    it from there), else 1. The rng argument is accepted for a uniform call signature and not used."""

    __test__ = False  # not a pytest class

    def __init__(self, test_param: dict, scheme: Scheme, zoom: float | None = None,
                 interpolation: str = "nearest") -> None:
        super().__init__(scheme, test_param["crop_size"], test_param["is_color"], interpolation)
        if zoom is None:
            zoom = (test_param.get("scale_min", 1.0) + test_param.get("scale_max", 1.0)) / 2
        self.params = AugmentParams(zoom=float(zoom))

    def __call__(self, image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator | None = None,
                 visibility: np.ndarray | None = None) -> dict[str, np.ndarray]:
        return self.apply(image, landmarks, self.params, visibility)


class RawTransform:
    """No augmentation on the CPU (``augment_on: gpu``): the uint8 BGR image ``[H, W, 3]`` as it is,
    landmarks float32, visibility, identity matrix. ``gpu_augment.GpuAugment`` does the rest on the
    device; all images of a run must then share one size (as the release's collate also required)."""

    def __init__(self, scheme: Scheme) -> None:
        self.num_landmarks = scheme.num_landmarks

    def __call__(self, image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator | None = None,
                 visibility: np.ndarray | None = None) -> dict[str, np.ndarray]:
        landmarks = np.asarray(landmarks, dtype=np.float64)
        check_inputs(image, landmarks, self.num_landmarks)
        visibility = (np.ones(self.num_landmarks, dtype=bool) if visibility is None
                      else np.asarray(visibility, dtype=bool).reshape(self.num_landmarks))
        return {"image": np.array(image, dtype=np.uint8, copy=True), "landmarks": landmarks.astype(np.float32),
                "visibility": visibility, "matrix": np.eye(2, 3, dtype=np.float32)}
