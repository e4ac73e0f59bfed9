"""The one record type every reader returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Sample:
    """One annotated face.

    image_path: the image file ("" when ``image`` holds the pixels, e.g. COFW .mat or synthetic).
    name: identifier; for the release's list format, the image path relative to its root.
    landmarks: ``[K, 2]`` float64, (x, y) in 0-based image pixels.
    bbox: ``[4]`` x1, y1, x2, y2 in image pixels, when the format has one.
    attributes: subset flags, e.g. WFLW ``{"pose": 0, "expression": 1, ...}``.
    visibility: ``[K]`` bool, True = visible; None = the format says nothing (treat as visible).
    crop_matrix: ``[2, 3]`` affine from the ORIGINAL image to this sample's image (set for prepared
        crops), so predictions can be mapped back to original-image pixels.
    source: ``"file:line"`` where the record was read, for error messages.
    image: in-memory BGR uint8 ``[H, W, 3]`` (or ``[H, W]``) pixels, when there is no file.
    """

    image_path: str | Path
    name: str
    landmarks: np.ndarray
    bbox: np.ndarray | None = None
    attributes: dict[str, int] = field(default_factory=dict)
    visibility: np.ndarray | None = None
    crop_matrix: np.ndarray | None = None
    source: str = ""
    image: np.ndarray | None = None

    @property
    def num_landmarks(self) -> int:
        return int(self.landmarks.shape[0])
