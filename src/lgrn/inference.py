"""FaceAligner: images (paths, RGB or BGR arrays, PIL images, or lists of these) plus optional face boxes
-> landmarks in original-image pixels. Each face is cut out as the training crops were (square crop,
``lgrn.geometry.cut_crop``: bilinear, anti-aliased when shrinking, black outside the image), turned
into the network input exactly as in training (BGR, grayscale when the model is, per-image z-score:
``lgrn.images.crop_faces``), run through the model (PyTorch or ONNX Runtime: ``lgrn.backends``) in batches
that mix the faces of all images of a call, and mapped back through the inverse crop transform. Boxes come
from the caller or from a :class:`lgrn.detect.FaceDetector` (RetinaFace by default, OpenCV's Haar cascade as
fallback). See docs/inference.md. The result is always a :class:`FaceLandmarks` (``N = 0`` when there is
no face, never ``None``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backends import LandmarkNetwork, Network, load_network, torch_network
from .detect import LANDMARK_BOX, BoxCalibration, FaceDetector, as_boxes, default_detector
from .geometry import apply_affines, invert_affines, square_crop_box
from .images import (DEFAULT_MAX_PIXELS, ImageInput, ImageReadError, crop_faces, header_pixels, load_bgr,
                     read_image, to_bgr)
from .pretrained import pretrained_path

# read_image, to_bgr, load_bgr, crop_faces, ImageReadError (lgrn.images) and torch_network (lgrn.backends)
# are re-exported: they were first published here.
__all__ = ["FaceAligner", "FaceLandmarks", "NonFiniteOutputError", "ImageReadError", "read_image", "to_bgr",
           "load_bgr", "crop_faces", "ImageInput", "DEFAULT_MAX_PIXELS", "header_pixels", "torch_network"]


class NonFiniteOutputError(ValueError):
    """The network gave NaN or infinite landmarks (broken weights)."""


@dataclass
class FaceLandmarks:
    """Landmarks of the faces of one image.

    ``landmarks [N, K, 2]`` float32 (x, y) in original-image pixels; ``boxes [N, 4]`` float32, the face
    boxes used (given or detected, x1 y1 x2 y2); ``crop_boxes [N, 4]`` float32, the square crops the
    network saw; ``scheme`` the landmark scheme name (e.g. "wflw98"); ``image_size`` = (height, width).
    ``N = 0`` (arrays of shape ``[0, K, 2]`` and ``[0, 4]``) when there is no face."""

    landmarks: np.ndarray
    boxes: np.ndarray
    crop_boxes: np.ndarray
    scheme: str
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return int(self.landmarks.shape[0])

    @property
    def num_landmarks(self) -> int:
        return int(self.landmarks.shape[1])


class FaceAligner:
    """Landmarks for faces in images with a trained model.

    ``network`` maps network inputs ``[B, C, S, S]`` float32 (numpy) to landmarks ``[B, K, 2]`` in input
    pixels; usually built by :meth:`from_checkpoint`. ``detector`` finds faces when no boxes are given
    (default: :func:`lgrn.detect.default_detector`, RetinaFace, or the Haar cascade when RetinaFace cannot
    run). ``box_calibration`` maps caller-given boxes to the
    crop (default: the training rule, square 1.2 x box, right for tight face / landmark boxes).
    ``refine`` > 0 re-crops each face around its own predicted landmarks (the training crop rule
    exactly) and predicts again, that many times: it corrects badly placed detector crops but inherits
    the model's own error (measured numbers in docs/inference.md; useless with random weights).
    """

    def __init__(self, network: Network, scheme: Any, crop_size: int, is_color: bool = True,
                 detector: FaceDetector | None = None, batch_size: int = 32,
                 box_calibration: BoxCalibration = LANDMARK_BOX, refine: int = 0, config: dict | None = None,
                 backend: str = "torch", flip: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.flip = bool(flip)
        self.network = network
        self.scheme = scheme
        self.crop_size = int(crop_size)
        self.is_color = bool(is_color)
        self._detector = detector
        self.batch_size = int(batch_size)
        self.box_calibration = box_calibration
        self.refine = int(refine)
        self.config = config
        self.backend = backend

    @property
    def detector(self) -> FaceDetector:
        if self._detector is None:   # built on first use: callers that pass boxes never load a detector
            self._detector = default_detector()
        return self._detector

    @detector.setter
    def detector(self, detector: FaceDetector) -> None:
        self._detector = detector

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", backend: str | None = None,
                        threads: int | None = None, **kwargs: Any) -> "FaceAligner":
        """Rebuild the model from an lgrn checkpoint (its stored config and scheme) or from an exported ONNX
        file (its embedded metadata). ``device``: "cpu", "cuda" or "auto". ``backend``: "torch" or
        "onnxruntime" (default: "onnxruntime" for ``.onnx`` files, else "torch"; "onnxruntime" with a
        checkpoint converts it to ONNX in memory first: :func:`lgrn.backends.load_network`). ``threads``:
        ONNX Runtime intra-op threads. Other keyword arguments go to the constructor (``detector``,
        ``batch_size``, ``box_calibration``, ``refine``, ``flip``)."""
        network = load_network(path, backend=backend, device=device, threads=threads)
        return cls.from_network(network, **kwargs)

    @classmethod
    def from_network(cls, network: LandmarkNetwork, **kwargs: Any) -> "FaceAligner":
        """An aligner around a loaded :class:`lgrn.backends.LandmarkNetwork` (its scheme, crop size, colour
        mode, config and backend); keyword arguments go to the constructor."""
        return cls(network.run, network.scheme, network.crop_size, network.is_color, config=network.config,
                   backend=network.backend, **kwargs)

    @classmethod
    def from_pretrained(cls, name: str | None = None, **options: Any) -> "FaceAligner":
        """A ready aligner with a model shipped inside the package (no download): ``name`` is one of
        ``lgrn.pretrained.available_models()``, default ``lgrn.pretrained.DEFAULT_MODEL`` (68 points,
        trained on 300-W: research use only, see its model card). ``options`` are those of
        :meth:`from_checkpoint` (``device``, ``backend``, ``threads``, ``detector``, ``batch_size``,
        ``box_calibration``, ``refine``)."""
        return cls.from_checkpoint(pretrained_path(name), **options)

    # -- preprocessing -------------------------------------------------------------------------------
    def crop(self, image_bgr: np.ndarray, crop_boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :func:`crop_faces` (with this model's crop size and colour mode)."""
        return crop_faces(image_bgr, crop_boxes, self.crop_size, self.is_color)

    def run_network(self, inputs: np.ndarray) -> np.ndarray:
        """Landmarks ``[N, K, 2]`` (crop pixels) for network inputs ``[N, C, S, S]``, ``batch_size`` at a time.
        With ``flip``, each crop also goes through mirrored (the per-image z-score does not change under a
        mirror), its landmarks are mirrored back (x -> S - 1 - x, left/right indices swapped by the
        scheme's flip permutation) and the two predictions are averaged: twice the cost, a little more
        accurate."""
        outputs = [np.asarray(self.network(inputs[i:i + self.batch_size]), dtype=np.float32)
                   for i in range(0, len(inputs), self.batch_size)]
        if self.flip and len(inputs):
            mirrored = np.ascontiguousarray(inputs[..., ::-1])
            back = []
            for i, out in zip(range(0, len(inputs), self.batch_size), outputs):
                flipped = np.asarray(self.network(mirrored[i:i + self.batch_size]), dtype=np.float32)
                flipped = flipped[:, list(self.scheme.flip_permutation)]
                flipped[..., 0] = (self.crop_size - 1) - flipped[..., 0]
                back.append((out + flipped) / 2)
            outputs = back
        if not all(np.all(np.isfinite(out)) for out in outputs):
            raise NonFiniteOutputError("the model outputs non-finite landmarks (NaN or infinity): its weights are "
                                       "broken; no landmarks written")
        k = self.scheme.num_landmarks
        return np.concatenate(outputs) if outputs else np.zeros((0, k, 2), dtype=np.float32)

    # -- prediction ----------------------------------------------------------------------------------
    def predict(self, images: ImageInput | Sequence[ImageInput], boxes: Any = None,
                color: str = "rgb") -> FaceLandmarks | list[FaceLandmarks]:
        """Landmarks for one image (-> :class:`FaceLandmarks`) or a list of images (-> one per image).

        ``images``: a path, an array (``color`` says whether 3-channel arrays are "rgb" or "bgr"; gray,
        RGBA and 16-bit arrays are accepted), a PIL image, or a list of these. ``boxes``: ``[N, 4]``
        x1, y1, x2, y2 in image pixels for one image (``[0, 4]`` = no face), a list of those (or of
        ``None``) for a list of images, or ``None`` to run the detector. Every face of every image goes
        through the network in shared batches of ``batch_size``."""
        single = not isinstance(images, (list, tuple))
        image_list = [images] if single else list(images)
        if single:
            box_list = [boxes]
        elif boxes is None:
            box_list = [None] * len(image_list)
        else:
            box_list = list(boxes)
            if len(box_list) != len(image_list):
                raise ValueError(f"boxes: got {len(box_list)} box arrays for {len(image_list)} images")
        prepared = []
        for index, (image, given) in enumerate(zip(image_list, box_list)):
            where = "boxes" if single else f"boxes[{index}]"
            prepared.append(self._locate(load_bgr(image, color), given, where))
        results = self._align(prepared)
        return results[0] if single else results

    def _locate(self, image: np.ndarray, given: Any, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if given is None:
            boxes = as_boxes(self.detector.detect(image), where="detector output")
            crop_boxes = self.detector.calibration.crop_boxes(boxes)
        else:
            boxes = as_boxes(given, where=where)
            crop_boxes = self.box_calibration.crop_boxes(boxes)
        return image, boxes, crop_boxes

    def _align(self, prepared: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[FaceLandmarks]:
        counts = [len(crop_boxes) for _, _, crop_boxes in prepared]
        crop_boxes = [c for _, _, c in prepared]
        for step in range(self.refine + 1):
            crops = [self.crop(image, boxes) for (image, _, _), boxes in zip(prepared, crop_boxes)]
            inputs = np.concatenate([c[0] for c in crops]) if crops else np.zeros((0,))
            landmarks = self.run_network(inputs) if len(inputs) else np.zeros((0, self.scheme.num_landmarks, 2))
            per_image, start = [], 0
            for (_, matrices), count in zip(crops, counts):
                chunk = landmarks[start:start + count]
                start += count
                per_image.append(apply_affines(chunk, invert_affines(matrices))
                                 if count else np.zeros((0, self.scheme.num_landmarks, 2)))
            if step < self.refine:
                crop_boxes = [self._recrop(points, boxes) for points, boxes in zip(per_image, crop_boxes)]
        return [FaceLandmarks(landmarks=points.astype(np.float32), boxes=boxes.astype(np.float32),
                              crop_boxes=c.astype(np.float32), scheme=self.scheme.name,
                              image_size=(int(image.shape[0]), int(image.shape[1])))
                for points, (image, boxes, _), c in zip(per_image, prepared, crop_boxes)]

    @staticmethod
    def _recrop(landmarks: np.ndarray, crop_boxes: np.ndarray) -> np.ndarray:
        out = np.array(crop_boxes, dtype=np.float64, copy=True)
        for i, points in enumerate(landmarks):
            if np.all(np.isfinite(points)):
                box = square_crop_box(points, 1.2)
                # a collapsed prediction (untrained model) would give a degenerate crop: keep the old one
                if box[2] - box[0] > 0.25 * (out[i, 2] - out[i, 0]):
                    out[i] = box
        return out

