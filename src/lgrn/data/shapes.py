"""Training shapes without their images: the landmark arrays of release-format list files
(docs/data_formats.md), e.g. for deriving a data-driven top-k landmark graph (``lgrn graph``,
docs/losses_metrics.md)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .readers import read_release_list


def load_training_shapes(sources: list[str], num_landmarks: int, root: str = ".") -> np.ndarray:
    """All shapes ``[N, K, 2]`` (float64, ``(x, y)``) of the release-format list files ``sources`` with
    ``num_landmarks`` landmarks per line; the images under ``root`` are not read. Raises
    FileNotFoundError for a missing list and ValueError for fewer than 2 shapes or a malformed line."""
    shapes = []
    for source in sources:
        if not Path(source).is_file():
            raise FileNotFoundError(f"annotation list not found: {source}")
        shapes += [s.landmarks for s in read_release_list(root, source, num_landmarks, check_images=False)]
    if len(shapes) < 2:
        raise ValueError(f"{', '.join(sources)}: need at least 2 shapes to compute correlations, got {len(shapes)}")
    return np.stack(shapes).astype(np.float64)
