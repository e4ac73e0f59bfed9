"""Face detectors behind one small interface (:class:`FaceDetector`: ``detect(image BGR) -> boxes [N, 4]``
plus a :class:`BoxCalibration` from its boxes to the network's crop) and the default one:
:func:`default_detector` gives RetinaFace (MobileNet-0.25, ONNX Runtime, ``retinaface.py``) and falls back
to OpenCV's Haar cascade (``haar.py``), with one log line, when onnxruntime or the model package is
missing. Nothing is downloaded at run time.
"""
from __future__ import annotations

import logging

from .base import (LANDMARK_BOX, BoxCalibration, CalibrationReport, CallableDetector, FaceDetector, as_boxes,
                   box_iou, calibrate_detector, calibration_residuals, fit_box_calibration, match_faces)
from .haar import HAAR_CALIBRATION, HaarFaceDetector
from .retinaface import RETINAFACE_CALIBRATION, RetinaFaceDetector, available as retinaface_available

__all__ = ["BoxCalibration", "LANDMARK_BOX", "HAAR_CALIBRATION", "RETINAFACE_CALIBRATION", "FaceDetector",
           "HaarFaceDetector", "RetinaFaceDetector", "CallableDetector", "CalibrationReport", "default_detector",
           "DETECTORS", "calibration_residuals", "fit_box_calibration", "calibrate_detector", "box_iou", "as_boxes",
           "match_faces"]

logger = logging.getLogger("lgrn")
DETECTORS = ("retinaface", "haar")
_fallback_logged = False


def default_detector(name: str = "auto", threads: int | None = None, min_size: int | None = None) -> FaceDetector:
    """``auto`` (default): RetinaFace when it can run here, else the Haar cascade with one log line
    saying why; ``retinaface`` or ``haar`` to choose (``retinaface`` without its model is an error).
    ``min_size``: smallest face side in original pixels (default: the detector's own)."""
    global _fallback_logged
    if name not in ("auto", *DETECTORS):
        raise ValueError(f"unknown face detector {name!r}: expected auto, {' or '.join(DETECTORS)}")
    reason = retinaface_available() if name != "haar" else "haar was asked for"
    if reason is None:
        options = {} if min_size is None else {"min_size": min_size}
        return RetinaFaceDetector(threads=threads, **options)
    if name == "retinaface":
        raise FileNotFoundError(f"the RetinaFace detector cannot run: {reason}")
    if name == "auto" and not _fallback_logged:
        _fallback_logged = True
        logger.warning("face detector: using OpenCV's Haar cascade, which misses more faces: %s", reason)
    return HaarFaceDetector() if min_size is None else HaarFaceDetector(min_size=min_size)
