"""FaceAligner: images (paths, RGB or BGR arrays, PIL images, or lists of these) plus optional face boxes
-> landmarks in original-image pixels. Each face is cut out as the training crops were (square crop,
``lgrn.geometry.cut_crop``: bilinear, anti-aliased when shrinking, black outside the image), turned
into the network input exactly as in training (BGR, grayscale when the model is, per-image z-score,
``normalize_image``), run through the model (PyTorch or ONNX Runtime) in batches that mix the faces of
all images of a call, and mapped back through the inverse crop transform. Boxes come from the caller
or from a :class:`lgrn.detect.FaceDetector` (RetinaFace by default, OpenCV's Haar cascade as fallback). The result is
always a :class:`FaceLandmarks` (``N = 0`` when there is no face, never ``None``).
"""
from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import cv2
import numpy as np
import torch

from .detect import LANDMARK_BOX, BoxCalibration, FaceDetector, as_boxes, default_detector
from .geometry import apply_affines, crop_matrix, cut_crop, invert_affines, square_crop_box

__all__ = ["FaceAligner", "FaceLandmarks", "ImageReadError", "read_image", "to_bgr", "load_bgr", "crop_faces",
           "ImageInput"]

ImageInput = Union[str, Path, np.ndarray, Any]  # Any: a PIL.Image.Image (PIL is imported only if used)
DEFAULT_MAX_PIXELS = 40_000_000   # a 109 KB 30,000 x 30,000 PNG would otherwise decode to 2.7 GB


class ImageReadError(ValueError):
    """An image file cannot be read or decoded; the message names the file."""


class NonFiniteOutputError(ValueError):
    """The network gave NaN or infinite landmarks (broken weights)."""


def to_bgr(image: np.ndarray, color: str = "rgb", where: str = "image") -> np.ndarray:
    """BGR uint8 ``[H, W, 3]`` from an array: ``[H, W]`` / ``[H, W, 1]`` grayscale, ``[H, W, 3]`` in
    ``color`` order ("rgb" or "bgr"), ``[H, W, 4]`` with alpha (dropped); uint8 or uint16 (scaled by
    255/65535; the per-image z-score makes the scale itself irrelevant) or bool."""
    if color not in ("rgb", "bgr"):
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    image = np.asarray(image)
    if image.dtype == np.uint16:
        image = np.round(image.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
    elif image.dtype == bool:
        image = image.astype(np.uint8) * 255
    elif image.dtype != np.uint8:
        raise TypeError(f"{where}: expected a uint8 (or uint16) image array, got dtype {image.dtype}; "
                        "convert floats in [0, 1] with (image * 255).round().astype(np.uint8)")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 1:
        raise ValueError(f"{where}: expected an image of shape [H, W], [H, W, 3] or [H, W, 4], got {image.shape}")
    if image.shape[2] == 4:
        image = image[:, :, :3]
    if color == "rgb":
        image = image[:, :, ::-1]
    return np.ascontiguousarray(image)


def header_pixels(source: str | Path | io.BytesIO) -> tuple[int, str] | None:
    """(pixel count, "W x H pixels") from an image file's header without decoding it; None when PIL
    cannot tell (OpenCV then decides whether it is an image)."""
    from PIL import Image

    try:
        with Image.open(source) as image:
            width, height = image.size
            return width * height, f"{width} x {height} pixels"
    except Image.DecompressionBombError as exc:     # PIL refuses to even report very large sizes
        found = re.search(r"\((\d+) pixels\)", str(exc))
        count = int(found.group(1)) if found else 1 << 62
        return count, f"{count} pixels"
    except Exception:
        return None


def read_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file to BGR uint8 ``[H, W, 3]`` (grayscale, alpha and 16-bit files included; EXIF
    orientation applied, so landmarks refer to the image as viewers show it). Raises
    :class:`ImageReadError` naming the file when it is missing, not a regular file (a FIFO would block),
    larger than ``max_pixels`` (checked from the header, before decoding; None = no limit) or not a
    decodable image."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ImageReadError(f"cannot read image {path}: not a regular file")
    if max_pixels is not None and path.is_file():
        size = header_pixels(path)
        if size is not None and size[0] > max_pixels:
            raise ImageReadError(f"image {path} is {size[1]}, over the limit of {max_pixels} pixels (raise it "
                                 "with max_pixels / --max-pixels)")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)   # np.fromfile also handles non-ASCII paths
    except OSError as exc:
        raise ImageReadError(f"cannot read image {path}: {exc.strerror or exc}") from None
    image = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR) if data.size else None
    if image is None:
        raise ImageReadError(f"cannot decode image {path}: not an image format OpenCV can read, or a damaged file")
    if image.dtype not in (np.uint8, np.uint16):
        # 32-bit float (EXR/HDR, TIFF) has no fixed range: stretch to 8 bits
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return to_bgr(image, "bgr", where=str(path))


def _pil_to_bgr(image: Any) -> np.ndarray:
    mode = image.mode
    if mode.startswith("I;16"):
        return to_bgr(np.array(image, dtype=np.uint16), "rgb")
    if mode not in ("L", "RGB", "RGBA", "1"):
        image = image.convert("RGBA" if "A" in mode or "transparency" in image.info else "RGB")
    return to_bgr(np.array(image), "rgb")


def load_bgr(image: ImageInput, color: str = "rgb") -> np.ndarray:
    """Any supported input (path, array in ``color`` order, PIL image) -> BGR uint8 ``[H, W, 3]``."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, np.ndarray):
        return to_bgr(image, color)
    if type(image).__module__.startswith("PIL."):
        return _pil_to_bgr(image)
    raise TypeError(f"unsupported image input of type {type(image).__name__}: expected a path, a numpy array "
                    "or a PIL image (or a list of these)")


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


Network = Callable[[np.ndarray], np.ndarray]


def crop_faces(image_bgr: np.ndarray, crop_boxes: np.ndarray, crop_size: int,
               is_color: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Network inputs ``[N, C, S, S]`` float32 and crop matrices ``[N, 2, 3]`` (image -> crop pixels) for
    square ``crop_boxes [N, 4]`` of a BGR uint8 image, made exactly like the training data: the crop of
    ``lgrn prepare`` (``cut_crop``), grayscale for a 1-channel model, per-image z-score."""
    from .data.transforms import normalize_image

    inputs = np.zeros((len(crop_boxes), 3 if is_color else 1, crop_size, crop_size), dtype=np.float32)
    matrices = np.zeros((len(crop_boxes), 2, 3))
    for i, box in enumerate(crop_boxes):
        matrices[i] = crop_matrix(box, crop_size)
        patch = cut_crop(image_bgr, matrices[i], crop_size)
        if not is_color:
            patch = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY)
        inputs[i] = normalize_image(patch)
    return inputs, matrices


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
        checkpoint exports it to ONNX first). ``threads``: ONNX Runtime intra-op threads. Other keyword
        arguments go to the constructor (``detector``, ``batch_size``, ``box_calibration``, ``refine``,
        ``flip``)."""
        path = Path(path)
        is_onnx = path.suffix.lower() == ".onnx"
        backend = backend or ("onnxruntime" if is_onnx else "torch")
        if backend not in ("torch", "onnxruntime"):
            raise ValueError(f"backend must be 'torch' or 'onnxruntime', got {backend!r}")
        if device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if backend == "torch":
            if is_onnx:
                raise ValueError(f"{path}: an ONNX file runs with backend='onnxruntime', not 'torch'")
            from .models import load_model

            if device == "cuda" and not torch.cuda.is_available():
                raise RuntimeError("device='cuda' requested but torch.cuda.is_available() is False")
            model = load_model(path, map_location="cpu").to(device).eval()
            structure = model.config["structure"]
            return cls(torch_network(model, torch.device(device)), model.scheme, structure["crop_size"],
                       structure["is_color"], config=model.config, backend="torch", **kwargs)
        from .export import export_onnx, load_onnx_model

        if is_onnx:
            onnx_model = load_onnx_model(path, threads=threads, device=device)
        else:
            from .models import load_model

            with tempfile.TemporaryDirectory() as tmp:   # the session keeps the graph in memory
                onnx_path = export_onnx(load_model(path), Path(tmp) / "model.onnx", sidecar=False)
                onnx_model = load_onnx_model(onnx_path, threads=threads, device=device)
        return cls(onnx_model.run_numpy, onnx_model.scheme, onnx_model.crop_size, onnx_model.is_color,
                   config=onnx_model.config, backend="onnxruntime", **kwargs)

    @classmethod
    def from_pretrained(cls, name: str | None = None, **options: Any) -> "FaceAligner":
        """A ready aligner with a model shipped inside the package (no download): ``name`` is one of
        ``lgrn.pretrained.available_models()``, default ``lgrn.pretrained.DEFAULT_MODEL`` (68 points,
        trained on 300-W: research use only, see its model card). ``options`` are those of
        :meth:`from_checkpoint` (``device``, ``backend``, ``threads``, ``detector``, ``batch_size``,
        ``box_calibration``, ``refine``)."""
        from .pretrained import pretrained_path

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


def torch_network(model: torch.nn.Module, device: torch.device) -> Network:
    """A PyTorch model as a ``Network``: numpy ``[N, C, S, S]`` float32 in, numpy landmarks out."""
    def run(inputs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(inputs)).to(device)).float().cpu().numpy()
    return run
