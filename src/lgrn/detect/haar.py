"""OpenCV's bundled Haar cascade (``cv2.data.haarcascades``: nothing to download) as a face detector, with
the box calibration fitted for it on real annotated faces (docs/inference.md). The fallback when
RetinaFace cannot run.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from .base import BoxCalibration, FaceDetector, box_iou

__all__ = ["HAAR_CALIBRATION", "HaarFaceDetector"]

# Fitted with calibrate_detector(HaarFaceDetector(), ...) on the 20 faces of ../shared/data (14 WFLW test
# faces, 6 300W/LFPW faces) against the training crop (1.2 x landmark box): see docs/inference.md.
HAAR_CALIBRATION = BoxCalibration(scale=1.068, offset_x=0.009, offset_y=0.178)


class HaarFaceDetector(FaceDetector):
    """OpenCV's bundled Viola-Jones cascade (frontal faces). The image is reduced so that its longer side
    is at most ``max_side`` (speed), histogram-equalised, and scanned with ``scale_factor`` /
    ``min_neighbors``; ``min_size`` is the smallest face side in ORIGINAL pixels. ``angles`` (degrees)
    also scans rotated copies of the image, which finds faces tilted in-plane beyond the cascade's
    ~15 degree tolerance at one extra scan per angle; overlapping detections are merged, earlier angles
    first. Returned boxes are the cascade's squares in original-image pixels (for a rotated scan: the
    square around the mapped centre, same side)."""

    def __init__(self, cascade: str = "haarcascade_frontalface_default.xml", scale_factor: float = 1.1,
                 min_neighbors: int = 5, min_size: int = 40, max_side: int | None = 1024,
                 angles: Iterable[float] = (0.0,), equalize: bool = True,
                 calibration: BoxCalibration = HAAR_CALIBRATION) -> None:
        path = Path(cascade) if Path(cascade).is_file() else Path(cv2.data.haarcascades) / cascade
        self.classifier = cv2.CascadeClassifier(str(path))
        if self.classifier.empty():
            raise FileNotFoundError(f"cannot load the Haar cascade {path} (expected a file name from "
                                    f"cv2.data.haarcascades = {cv2.data.haarcascades} or a path)")
        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor}")
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)
        self.max_side = max_side
        self.angles = tuple(float(a) for a in angles)
        self.equalize = equalize
        self.calibration = calibration

    def _gray(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
        factor = 1.0
        if self.max_side and max(image.shape[:2]) > self.max_side:
            factor = self.max_side / max(image.shape[:2])
            image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        return (cv2.equalizeHist(image) if self.equalize else image), factor

    def _scan(self, gray: np.ndarray, angle: float, min_size: int) -> np.ndarray:
        """Detections of one scan as centre x, centre y, side in ``gray``'s pixels: ``[N, 3]``."""
        h, w = gray.shape
        matrix = None
        if angle:
            # Rotate about the image centre on a canvas large enough to keep every pixel.
            matrix = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle, 1.0)
            cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
            out_w, out_h = int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin))
            matrix[0, 2] += out_w / 2 - w / 2
            matrix[1, 2] += out_h / 2 - h / 2
            gray = cv2.warpAffine(gray, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR)
        found = self.classifier.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                                 minSize=(min_size, min_size))
        if len(found) == 0:
            return np.zeros((0, 3))
        found = np.asarray(found, dtype=np.float64)
        # cv2 rectangles cover pixels x .. x+w-1: the centre of that pixel range is x + (w - 1) / 2.
        centres = found[:, :2] + (found[:, 2:4] - 1) / 2
        if matrix is not None:
            centres = (centres - matrix[:, 2]) @ np.linalg.inv(matrix[:, :2]).T
        return np.concatenate([centres, found[:, 2:3]], axis=1)

    def detect(self, image: np.ndarray) -> np.ndarray:
        gray, factor = self._gray(np.asarray(image))
        min_size = max(1, round(self.min_size * factor))
        boxes = np.zeros((0, 4))
        for angle in self.angles:
            found = self._scan(gray, angle, min_size)
            if not len(found):
                continue
            # Back to original pixels: pixel centres scale about -0.5 (cv2.resize convention).
            centres = (found[:, :2] + 0.5) / factor - 0.5
            half = found[:, 2:3] / factor / 2
            new = np.concatenate([centres - half, centres + half], axis=1)
            if len(boxes):
                new = new[box_iou(new, boxes).max(axis=1) < 0.3]
            boxes = np.concatenate([boxes, new])
        return boxes
