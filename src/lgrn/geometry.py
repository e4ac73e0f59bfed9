"""Plane geometry shared by data preparation, augmentation and inference: landmark boxes, square face
crops and 2x3 affine matrices. One convention everywhere: a matrix ``M`` maps source pixels to
destination pixels, ``x' = M[:, :2] @ x + M[:, 2]``, with pixel centres at integer coordinates (pixel
``(0, 0)`` covers ``[-0.5, 0.5]^2``). That is also what ``cv2.warpAffine`` does with ``M`` (it samples the
source at ``M^-1 x'`` for every destination pixel centre ``x'``), so a point moved with
:func:`apply_affine` lands exactly where :func:`warp` moves the pixel under it. Pure numpy plus
``cv2.warpAffine``.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["landmark_box", "square_crop_box", "square_box_from_bbox", "crop_matrix", "apply_affine",
           "invert_affine", "apply_affines", "invert_affines", "compose_affine", "warp", "cut_crop"]

INTERPOLATIONS = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR}


def _as_landmarks(landmarks: np.ndarray) -> np.ndarray:
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 2 or landmarks.shape[1] != 2 or landmarks.shape[0] == 0:
        raise ValueError(f"landmarks must have shape [K, 2] with K >= 1, got {landmarks.shape}")
    if not np.all(np.isfinite(landmarks)):
        raise ValueError("landmarks contain NaN or infinite values")
    return landmarks


def _as_matrix(matrix: np.ndarray, what: str = "affine matrix") -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (2, 3):
        raise ValueError(f"{what} must have shape [2, 3], got {matrix.shape}")
    return matrix


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    """Tight box ``[4]`` = x1, y1, x2, y2 (min and max) of ``landmarks [K, 2]``."""
    landmarks = _as_landmarks(landmarks)
    return np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)])


def square_box_from_bbox(bbox: Sequence[float] | np.ndarray, scale: float = 1.2) -> np.ndarray:
    """Square box ``[4]`` centred on ``bbox`` (x1, y1, x2, y2) with side ``scale * max(w, h)``."""
    x1, y1, x2, y2 = np.asarray(bbox, dtype=np.float64).reshape(4)
    side = float(scale) * max(x2 - x1, y2 - y1)
    if not np.isfinite(side) or side <= 0:
        raise ValueError(f"cannot build a square box from bbox {[x1, y1, x2, y2]} with scale {scale}: "
                         "the box must have a positive width or height")
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])


def square_crop_box(landmarks: np.ndarray, scale: float = 1.2) -> np.ndarray:
    """The face crop of the processed datasets (PFLD's rule, docs/data_formats.md; the release's crop: docs/deviations.md): a square of side
    ``scale * max(w, h)`` of the landmark box, centred on it. Returns ``[4]`` x1, y1, x2, y2."""
    return square_box_from_bbox(landmark_box(landmarks), scale)


def crop_matrix(box: Sequence[float] | np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """``[2, 3]`` float64 affine from original pixels to crop pixels: the box's top-left corner goes to
    0 and its side to ``size``, i.e. ``x' = (x - x1) * size / side``. ``size`` is an int (square) or
    (width, height); a non-square box is scaled per axis."""
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64).reshape(4)
    out_w, out_h = (size, size) if np.isscalar(size) else size
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"crop box must have x2 > x1 and y2 > y1, got {[x1, y1, x2, y2]}")
    sx, sy = out_w / (x2 - x1), out_h / (y2 - y1)
    return np.array([[sx, 0.0, -x1 * sx], [0.0, sy, -y1 * sy]])


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Move ``points [..., 2]`` with ``matrix [2, 3]``; returns float64 ``[..., 2]``."""
    points = np.asarray(points, dtype=np.float64)
    if points.shape[-1:] != (2,):
        raise ValueError(f"points must have shape [..., 2], got {points.shape}")
    matrix = _as_matrix(matrix)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse ``[2, 3]`` of an affine ``[2, 3]`` (raises on a singular matrix)."""
    matrix = _as_matrix(matrix)
    linear = matrix[:, :2]
    det = np.linalg.det(linear)
    if abs(det) < 1e-12:
        raise ValueError(f"affine matrix is singular (det {det:.3g}): {matrix.tolist()}")
    inv = np.linalg.inv(linear)
    return np.concatenate([inv, -inv @ matrix[:, 2:]], axis=1)


def invert_affines(matrices: np.ndarray) -> np.ndarray:
    """Inverse of each ``[2, 3]`` affine in ``[N, 2, 3]``."""
    linear = matrices[:, :, :2]
    inverse_linear = np.linalg.inv(linear)
    offset = -np.einsum("nij,nj->ni", inverse_linear, matrices[:, :, 2])
    return np.concatenate([inverse_linear, offset[:, :, None]], axis=2)


def apply_affines(points: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """``points [N, K, 2]`` through per-item ``matrices [N, 2, 3]``."""
    return np.einsum("nij,nkj->nki", matrices[:, :, :2], points) + matrices[:, None, :, 2]


def compose_affine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a`` after ``b``: ``apply_affine(p, compose_affine(a, b)) == apply_affine(apply_affine(p, b), a)``."""
    a, b = _as_matrix(a), _as_matrix(b)
    return np.concatenate([a[:, :2] @ b[:, :2], a[:, :2] @ b[:, 2:] + a[:, 2:]], axis=1)


def warp(image: np.ndarray, matrix: np.ndarray, size: int | tuple[int, int], interpolation: str = "bilinear",
         border_value: float | Sequence[float] = 0) -> np.ndarray:
    """Warp ``image [H, W]`` or ``[H, W, C]`` with ``matrix`` (source -> destination pixels) into an output
    of ``size`` (int = square, or (width, height)). Outside the source is filled with ``border_value`` (one
    value for every channel, or one per channel)."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {sorted(INTERPOLATIONS)}, got {interpolation!r}")
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must have shape [H, W] or [H, W, C], got {image.shape}")
    out_w, out_h = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    channels = 1 if image.ndim == 2 else image.shape[2]
    # cv2 reads a bare number as (v, 0, 0, 0): spread it over every channel ourselves.
    values = np.broadcast_to(np.asarray(border_value, dtype=np.float64).reshape(-1), (channels,))
    border = tuple(float(v) for v in values) + (0.0,) * max(0, 4 - channels)
    return cv2.warpAffine(image, _as_matrix(matrix), (out_w, out_h), flags=INTERPOLATIONS[interpolation],
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border[:4])


def cut_crop(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp ``image`` with ``matrix`` (original -> crop pixels) into ``size`` x ``size``, bilinear, black
    outside. When the crop shrinks the face, the image is first reduced with INTER_AREA (anti-aliasing); the
    reduction's exact affine is folded in, so the result still follows ``matrix`` to the sub-pixel."""
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale >= 1.0:
        return warp(image, matrix, size)
    height, width = image.shape[:2]
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    small = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    fx, fy = new_w / width, new_h / height
    # cv2.resize maps pixel centres by x_small = (x + 0.5) * fx - 0.5
    to_small = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5]])
    return warp(small, compose_affine(matrix, invert_affine(to_small)), size)
