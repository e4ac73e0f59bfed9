"""COFW (Burgos-Artizzu et al., ICCV 2013) from its MATLAB files: ``COFW_train_color.mat`` /
``COFW_test_color.mat`` are MATLAB v7.3 (= HDF5, read with h5py) and the older ``COFW_train.mat`` /
``COFW_test.mat`` are v5 (read with scipy.io.loadmat). Keys: ``IsTr``/``IsT`` (cell array of images),
``phisTr``/``phisT`` (one row per face: 29 x, 29 y, 29 occlusion flags with 1 = occluded) and
``bboxesTr``/``bboxesT`` (x, y, w, h). HDF5 stores every MATLAB array transposed (images as [3, W, H]),
which is undone here. Coordinates follow MATLAB's 1-based pixels, so 1 is subtracted (as for 300W .pts;
``one_based=False`` keeps them). Images are returned in memory (``Sample.image``, BGR uint8).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..sample import Sample

__all__ = ["read_cofw", "COFW_KEYS"]

COFW_KEYS = {"train": ("IsTr", "phisTr", "bboxesTr"), "test": ("IsT", "phisT", "bboxesT")}


def _to_bgr(image: np.ndarray, where: str) -> np.ndarray:
    """MATLAB RGB or grayscale (already in [H, W(, C)] order) -> contiguous BGR uint8 [H, W, 3]."""
    if image.dtype != np.uint8:
        if image.size and (np.nanmin(image) < 0 or np.nanmax(image) > 255):
            raise ValueError(f"{where}: image values outside 0..255 (dtype {image.dtype})")
        image = np.nan_to_num(image).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(image[:, :, ::-1])
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(np.ascontiguousarray(image[:, :, 0]), cv2.COLOR_GRAY2BGR)
    raise ValueError(f"{where}: expected a grayscale or RGB image, got an array of shape {image.shape}")


def _load_hdf5(path: Path, keys: tuple[str, str, str]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as mat:
        missing = [k for k in keys if k not in mat]
        if missing:
            raise ValueError(f"{path}: missing variable(s) {missing}; the file holds {sorted(mat.keys())}")
        images_key, phis_key, boxes_key = keys
        refs = np.asarray(mat[images_key]).reshape(-1)
        images = []
        for i, ref in enumerate(refs):
            if not isinstance(ref, h5py.Reference) or not ref:
                raise ValueError(f"{path}: {images_key}[{i + 1}] is not an object reference (not a cell array?)")
            # MATLAB [H, W, 3] is stored as [3, W, H] and [H, W] as [W, H]: a full transpose restores it.
            images.append(np.asarray(mat[ref]).T)
        phis = np.asarray(mat[phis_key], dtype=np.float64).T
        boxes = np.asarray(mat[boxes_key], dtype=np.float64).T
    return images, phis, boxes


def _load_v5(path: Path, keys: tuple[str, str, str]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    import scipy.io

    mat = scipy.io.loadmat(str(path))
    missing = [k for k in keys if k not in mat]
    if missing:
        raise ValueError(f"{path}: missing variable(s) {missing}; the file holds "
                         f"{sorted(k for k in mat if not k.startswith('__'))}")
    images_key, phis_key, boxes_key = keys
    cells = np.asarray(mat[images_key])
    if cells.dtype != object:
        raise ValueError(f"{path}: {images_key} is not a cell array of images (dtype {cells.dtype})")
    images = [np.asarray(cell) for cell in cells.reshape(-1)]
    return images, np.asarray(mat[phis_key], dtype=np.float64), np.asarray(mat[boxes_key], dtype=np.float64)


def read_cofw(mat_path: str | Path, split: str = "train", one_based: bool = True,
              allow_nan: bool = False) -> list[Sample]:
    """Read the train or test faces of a COFW .mat file (v7.3/HDF5 or v5).

    Each sample: ``image`` (BGR uint8 [H, W, 3]), ``landmarks [29, 2]``, ``visibility`` (not occluded),
    ``bbox`` (x1, y1, x2, y2), name ``image_0001.png`` (1-based index in the file), ``image_path`` "".
    Non-finite coordinates are an error unless ``allow_nan``.
    """
    mat_path = Path(mat_path)
    if split not in COFW_KEYS:
        raise ValueError(f"unknown COFW split {split!r}: expected 'train' or 'test'")
    if not mat_path.is_file():
        raise FileNotFoundError(f"COFW file not found: {mat_path}")
    import h5py

    keys = COFW_KEYS[split]
    images, phis, boxes = (_load_hdf5 if h5py.is_hdf5(mat_path) else _load_v5)(mat_path, keys)
    _, phis_key, boxes_key = keys
    if phis.ndim != 2 or phis.shape[1] % 3 or phis.shape[1] == 0:
        raise ValueError(f"{mat_path}: {phis_key} must have one row of 3K values (K x, K y, K occlusion flags) "
                         f"per face, got shape {phis.shape}")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{mat_path}: {boxes_key} must have one row of 4 values (x, y, w, h) per face, "
                         f"got shape {boxes.shape}")
    if not len(images) == len(phis) == len(boxes):
        raise ValueError(f"{mat_path}: {len(images)} images, {len(phis)} {phis_key} rows and {len(boxes)} "
                         f"{boxes_key} rows; the counts must agree")
    num_landmarks = phis.shape[1] // 3
    offset = 1.0 if one_based else 0.0
    samples = []
    for i, (image, phi, box) in enumerate(zip(images, phis, boxes)):
        where = f"{mat_path.name}: {split} face {i + 1}"
        start = 2 * num_landmarks if allow_nan else 0  # occlusion flags must always be finite
        bad = np.flatnonzero(~np.isfinite(phi[start:]))
        if bad.size:
            raise ValueError(f"{where}: {phis_key} column {start + int(bad[0]) + 1} is not a finite number")
        landmarks = np.stack([phi[:num_landmarks], phi[num_landmarks:2 * num_landmarks]], axis=1) - offset
        x, y, w, h = box
        samples.append(Sample(image_path="", name=f"image_{i + 1:04d}.png", landmarks=landmarks,
                              bbox=np.array([x - offset, y - offset, x - offset + w, y - offset + h]),
                              visibility=phi[2 * num_landmarks:] == 0, source=f"{mat_path}:{split}:{i + 1}",
                              image=_to_bgr(image, where)))
    return samples
