"""Drawing landmarks and boxes on BGR images: the one place the dots of every picture lgrn writes are drawn
(evaluation visualisations, `lgrn predict` annotated images, the demo)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

GREEN, RED = (0, 255, 0), (0, 0, 255)


def draw_points(canvas: np.ndarray, points: Iterable[Sequence[float]], radius: int,
                color: tuple[int, int, int], thickness: int = -1) -> np.ndarray:
    """Draw each ``(x, y)`` of ``points`` as an anti-aliased circle on ``canvas`` (in place; returned).
    ``thickness=-1`` fills the circle."""
    for x, y in points:
        cv2.circle(canvas, (int(round(float(x))), int(round(float(y)))), radius, color, thickness, cv2.LINE_AA)
    return canvas


def draw_box(canvas: np.ndarray, box: Sequence[float], color: tuple[int, int, int], thickness: int) -> np.ndarray:
    """Draw the rectangle ``x1, y1, x2, y2`` on ``canvas`` (in place; returned)."""
    cv2.rectangle(canvas, (round(float(box[0])), round(float(box[1]))), (round(float(box[2])), round(float(box[3]))),
                  color, thickness)
    return canvas
