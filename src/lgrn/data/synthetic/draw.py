"""Drawing primitives shared by the synthetic renderer: sub-pixel polygons, lines and ellipses on a uint8
BGR canvas (OpenCV fixed-point coordinates with 4 fractional bits, pixel centres at integer coordinates,
the same convention as the landmarks), and a ``Painter`` that draws the same primitive into the image and
into a coverage mask, so that which landmarks an occluder hides is decided from exactly the drawn pixels.
"""
from __future__ import annotations

import cv2
import numpy as np

SHIFT = 4                 # OpenCV fractional bits: coordinates are given in 1/16 px
ONE = 1 << SHIFT


def fixed(points: np.ndarray) -> np.ndarray:
    """Float pixel coordinates ``[N, 2]`` -> OpenCV fixed-point int32 ``[N, 2]``."""
    return np.round(np.asarray(points, dtype=np.float64).reshape(-1, 2) * ONE).astype(np.int32)


def color(bgr: np.ndarray | tuple) -> tuple[float, float, float]:
    """A BGR colour clipped to 0..255 as the plain tuple OpenCV wants."""
    c = np.clip(np.asarray(bgr, dtype=np.float64), 0, 255)
    return (float(c[0]), float(c[1]), float(c[2]))


def fill(image: np.ndarray, points: np.ndarray, bgr, antialias: bool = False) -> None:
    """Fill a polygon ``[N, 2]`` (no anti-aliasing by default: region colours stay exact)."""
    cv2.fillPoly(image, [fixed(points)], color(bgr) if image.ndim == 3 else bgr,
                 cv2.LINE_AA if antialias else cv2.LINE_8, SHIFT)


def polyline(image: np.ndarray, points: np.ndarray, bgr, thickness: int, closed: bool = False) -> None:
    """An anti-aliased poly-line through ``[N, 2]`` points."""
    cv2.polylines(image, [fixed(points)], closed, color(bgr), max(1, int(thickness)), cv2.LINE_AA, SHIFT)


def ellipse(image: np.ndarray, centre, axes, angle: float, bgr, line_type: int = cv2.LINE_8) -> None:
    """A filled ellipse; ``axes`` are half-axes in pixels, ``angle`` in degrees."""
    c = fixed(centre)[0]
    a = np.maximum(np.round(np.asarray(axes, dtype=np.float64) * ONE), 1).astype(int)
    cv2.ellipse(image, (int(c[0]), int(c[1])), (int(a[0]), int(a[1])), float(angle), 0, 360,
                color(bgr) if image.ndim == 3 else bgr, -1, line_type, SHIFT)


def inside(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Whether each point ``[N, 2]`` falls on a set pixel of ``mask [H, W]`` (nearest pixel)."""
    h, w = mask.shape
    idx = np.round(np.asarray(points)).astype(int)
    ok = (idx[:, 0] >= 0) & (idx[:, 0] < w) & (idx[:, 1] >= 0) & (idx[:, 1] < h)
    out = np.zeros(len(idx), dtype=bool)
    out[ok] = mask[idx[ok, 1], idx[ok, 0]] > 0
    return out


class Painter:
    """Draws each primitive into the BGR image and (value 255) into a coverage mask, with identical
    rasterisation (no anti-aliasing), so the mask is exactly the set of pixels the drawing covered."""

    def __init__(self, image: np.ndarray, mask: np.ndarray) -> None:
        self.image = image
        self.mask = mask

    def polygon(self, points: np.ndarray, bgr) -> None:
        fill(self.image, points, bgr)
        fill(self.mask, points, 255)

    def ellipse(self, centre, axes, angle: float, bgr) -> None:
        ellipse(self.image, centre, axes, angle, bgr)
        ellipse(self.mask, centre, axes, angle, 255)

    def line(self, p0, p1, bgr, thickness: int) -> None:
        a, b = fixed(p0)[0], fixed(p1)[0]
        for target, value in ((self.image, color(bgr)), (self.mask, 255)):
            cv2.line(target, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), value, max(1, int(thickness)),
                     cv2.LINE_8, SHIFT)


def composite(image: np.ndarray, region: np.ndarray, layer_fn, margin: int = 2) -> None:
    """Draw with ``layer_fn(roi_image, origin)`` on a copy of the region's bounding box, then copy back only
    the pixels inside the polygon ``region [N, 2]`` (clips irises to the eye, teeth to the mouth)."""
    h, w = image.shape[:2]
    x0, y0 = np.floor(region.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(region.max(axis=0)).astype(int) + margin + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return
    roi = image[y0:y1, x0:x1]
    layer = roi.copy()
    origin = np.array([x0, y0], dtype=np.float64)
    layer_fn(layer, origin)
    mask = np.zeros(roi.shape[:2], dtype=np.uint8)
    fill(mask, region - origin, 255)
    np.copyto(roi, layer, where=mask[:, :, None] > 0)
