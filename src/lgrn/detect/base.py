"""The detector interface and the calibration that maps a detector's boxes to the network's face crop. A
detector returns face boxes ``[N, 4]`` (x1, y1, x2, y2, image pixels) in its own style; its
:class:`BoxCalibration` turns each box into the square crop the model was trained on (side 1.2 x the
landmark box, centred on it). :func:`calibrate_detector` fits such a calibration on annotated faces.
Any detector plugs in by subclassing :class:`FaceDetector` or wrapping a function with
:class:`CallableDetector`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..geometry import landmark_box, square_box_from_bbox

__all__ = ["BoxCalibration", "LANDMARK_BOX", "FaceDetector", "CallableDetector", "CalibrationReport",
           "calibration_residuals", "fit_box_calibration", "calibrate_detector", "box_iou", "as_boxes",
           "match_faces"]


def as_boxes(boxes: np.ndarray | Sequence | None, where: str = "boxes") -> np.ndarray:
    """Validate and return ``[N, 4]`` float64 boxes (x1, y1, x2, y2); ``None`` or empty -> ``[0, 4]``."""
    if boxes is None:
        return np.zeros((0, 4))
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 4))
    if array.ndim == 1 and array.shape[0] == 4:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"{where}: expected boxes of shape [N, 4] (x1, y1, x2, y2), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{where}: boxes contain NaN or infinite values")
    bad = np.flatnonzero((array[:, 2] <= array[:, 0]) | (array[:, 3] <= array[:, 1]))
    if bad.size:
        raise ValueError(f"{where}: box {int(bad[0])} = {array[bad[0]].tolist()} must have x2 > x1 and y2 > y1")
    return array


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``a [N, 4]`` and ``b [M, 4]`` -> ``[N, M]``."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def match_faces(boxes: np.ndarray, faces: Sequence[np.ndarray]) -> list[int | None]:
    """For each annotated face (landmarks ``[K, 2]``) the index of the detection in ``boxes [N, 4]`` that
    is it, or None: its centre lies inside the landmark box and its larger side is 0.5-2x the landmark
    box's larger side (detectors draw boxes of different styles); the closest centre wins and each
    detection serves one face."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    used = np.zeros(len(boxes), dtype=bool)
    out: list[int | None] = []
    for landmarks in faces:
        lo, hi = np.min(landmarks, axis=0), np.max(landmarks, axis=0)
        side = float(np.max(hi - lo))
        ok = np.all((centres >= lo) & (centres <= hi), axis=1) & (sides >= 0.5 * side) & (sides <= 2 * side) & ~used
        if not ok.any():
            out.append(None)
            continue
        distance = np.where(ok, np.linalg.norm(centres - (lo + hi) / 2, axis=1), np.inf)
        best = int(np.argmin(distance))
        used[best] = True
        out.append(best)
    return out


@dataclass(frozen=True)
class BoxCalibration:
    """Detector box -> network crop: with ``side = max(w, h)`` of the box, the crop is the square of side
    ``scale * side`` centred at ``box centre + (offset_x, offset_y) * side``.

    ``LANDMARK_BOX`` (scale 1.2, no offset) is the training rule itself and suits boxes that hug the
    face like a landmark box; a detector with another box style gets its own fitted calibration."""

    scale: float = 1.2
    offset_x: float = 0.0
    offset_y: float = 0.0

    def crop_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """Square crop boxes ``[N, 4]`` for face boxes ``[N, 4]``."""
        boxes = as_boxes(boxes)
        side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        cx = (boxes[:, 0] + boxes[:, 2]) / 2 + self.offset_x * side
        cy = (boxes[:, 1] + boxes[:, 3]) / 2 + self.offset_y * side
        half = self.scale * side / 2
        return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)


LANDMARK_BOX = BoxCalibration(1.2, 0.0, 0.0)
class FaceDetector:
    """Interface: ``detect(image BGR uint8 [H, W, 3]) -> boxes [N, 4]`` float64 (x1, y1, x2, y2 in image
    pixels; ``[0, 4]`` when there is no face) plus ``calibration``, the map from those boxes to the
    network's crop. Subclass it and implement ``detect``."""

    calibration: BoxCalibration = LANDMARK_BOX

    def detect(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.detect(image)


class CallableDetector(FaceDetector):
    """Wrap any function ``image BGR uint8 [H, W, 3] -> boxes [N, 4]`` (e.g. a call into another
    detector library) with the calibration that suits its box style."""

    def __init__(self, function: Callable[[np.ndarray], np.ndarray | Sequence],
                 calibration: BoxCalibration = LANDMARK_BOX) -> None:
        self.function = function
        self.calibration = calibration

    def detect(self, image: np.ndarray) -> np.ndarray:
        return as_boxes(self.function(image), where=f"detector {getattr(self.function, '__name__', 'function')}")


@dataclass
class CalibrationReport:
    """Residuals of a fitted :class:`BoxCalibration` against ground-truth crops. Errors are fractions of
    the ground-truth crop side: ``centre_rms``/``centre_max`` = distance between crop centres,
    ``scale_rms`` = RMS of log(side ratio) (about the relative side error); ``iou_mean``/``iou_min`` of the
    predicted and ground-truth crops; ``matched`` of ``total`` faces had a detection."""

    matched: int
    total: int
    centre_rms: float
    centre_max: float
    scale_rms: float
    iou_mean: float
    iou_min: float
    missed: list[str]

    def summary(self) -> str:
        return (f"{self.matched}/{self.total} faces detected; crop centre error RMS {100 * self.centre_rms:.1f}% "
                f"(max {100 * self.centre_max:.1f}%) of the crop side, side error RMS {100 * self.scale_rms:.1f}%, "
                f"IoU with the training crop mean {self.iou_mean:.3f} (min {self.iou_min:.3f})")


def calibration_residuals(calibration: BoxCalibration, detector_boxes: np.ndarray, crop_boxes: np.ndarray) -> dict:
    """Residuals of ``calibration`` on matched ``detector_boxes`` / target ``crop_boxes`` ``[N, 4]``: the
    fields of :class:`CalibrationReport` (centre_rms, centre_max, scale_rms, iou_mean, iou_min)."""
    predicted = calibration.crop_boxes(detector_boxes)
    side = crop_boxes[:, 2] - crop_boxes[:, 0]
    centre_error = np.hypot((predicted[:, 0] + predicted[:, 2] - crop_boxes[:, 0] - crop_boxes[:, 2]) / 2,
                            (predicted[:, 1] + predicted[:, 3] - crop_boxes[:, 1] - crop_boxes[:, 3]) / 2) / side
    log_ratio = np.log((predicted[:, 2] - predicted[:, 0]) / side)
    iou = np.diag(box_iou(predicted, crop_boxes))
    return dict(centre_rms=float(np.sqrt(np.mean(centre_error ** 2))), centre_max=float(centre_error.max()),
                scale_rms=float(np.sqrt(np.mean(log_ratio ** 2))), iou_mean=float(iou.mean()), iou_min=float(iou.min()))


def fit_box_calibration(detector_boxes: np.ndarray, crop_boxes: np.ndarray) -> tuple[BoxCalibration, dict]:
    """Least-squares calibration from matched ``detector_boxes [N, 4]`` to target square ``crop_boxes
    [N, 4]``: the scale is fitted in log space (geometric mean of side ratios), the offsets as mean
    centre differences in units of the detector box side. Returns the calibration and its residuals."""
    detector_boxes, crop_boxes = as_boxes(detector_boxes), as_boxes(crop_boxes, "crop_boxes")
    if len(detector_boxes) == 0 or len(detector_boxes) != len(crop_boxes):
        raise ValueError(f"need the same positive number of detector and crop boxes, got {len(detector_boxes)} "
                         f"and {len(crop_boxes)}")
    side = np.maximum(detector_boxes[:, 2] - detector_boxes[:, 0], detector_boxes[:, 3] - detector_boxes[:, 1])
    target_side = crop_boxes[:, 2] - crop_boxes[:, 0]
    scale = float(np.exp(np.mean(np.log(target_side / side))))
    dx = ((crop_boxes[:, 0] + crop_boxes[:, 2]) - (detector_boxes[:, 0] + detector_boxes[:, 2])) / 2 / side
    dy = ((crop_boxes[:, 1] + crop_boxes[:, 3]) - (detector_boxes[:, 1] + detector_boxes[:, 3])) / 2 / side
    calibration = BoxCalibration(scale, float(dx.mean()), float(dy.mean()))
    return calibration, calibration_residuals(calibration, detector_boxes, crop_boxes)


def calibrate_detector(detector: FaceDetector, faces: Iterable[tuple[str, np.ndarray, np.ndarray]],
                       crop_scale: float = 1.2, min_iou: float = 0.25,
                       calibration: BoxCalibration | None = None) -> tuple[BoxCalibration, CalibrationReport, dict]:
    """Run ``detector`` on annotated faces ``(name, image BGR, landmarks [K, 2])``, match each face to the
    detection with the highest IoU with its landmark box (at least ``min_iou``), and fit the map from
    detector box to the training crop (square, ``crop_scale`` x landmark box). With ``calibration`` given,
    only its residuals are measured (no fit). Returns the calibration, its :class:`CalibrationReport` and
    ``{name: detector box}`` of the matched faces. Consecutive faces passing the same image object share
    one scan."""
    last_image, found = None, np.zeros((0, 4))
    matched_names, detector_boxes, targets, missed, total = [], [], [], [], 0
    for name, image, landmarks in faces:
        total += 1
        if image is not last_image:   # consecutive faces of one image share one scan
            last_image, found = image, detector.detect(image)
        tight = landmark_box(landmarks)
        if len(found):
            iou = box_iou(found, tight[None])[:, 0]
            best = int(iou.argmax())
            if iou[best] >= min_iou:
                matched_names.append(name)
                detector_boxes.append(found[best])
                targets.append(square_box_from_bbox(tight, crop_scale))
                continue
        missed.append(name)
    if not detector_boxes:
        raise ValueError(f"the detector found none of the {total} faces: nothing to calibrate")
    detector_boxes, targets = np.array(detector_boxes), np.array(targets)
    if calibration is None:
        calibration, residuals = fit_box_calibration(detector_boxes, targets)
    else:
        residuals = calibration_residuals(calibration, detector_boxes, targets)
    report = CalibrationReport(matched=len(matched_names), total=total, missed=missed, **residuals)
    return calibration, report, dict(zip(matched_names, detector_boxes))
