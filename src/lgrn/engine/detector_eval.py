"""Evaluation with a face detector's crops instead of the ground-truth ones: what a user of ``lgrn predict``
really gets. Each annotated face is looked for in its ORIGINAL image with the aligner's detector; the
detection that matches it (:func:`lgrn.detect.match_faces`: centre inside the landmark box, side 0.5-2x
its larger side) is cropped through the detector's box calibration, and the landmarks, mapped back to
original pixels, are compared with the annotation. A face the detector misses is a failure: it counts
with NME 1.0 in FR and AUC (and is listed), and is left out of the mean NME of the found faces.

For a prepared test list the originals come from its crop sidecar (``*_crops.jsonl``, written by
``lgrn prepare``) under the folder that was given to ``lgrn prepare --root``; their annotations are the
list's landmarks mapped back through the recorded crop matrix.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics
from ..data.readers import crops_path_for, read_crops
from ..detect import match_faces
from ..geometry import apply_affine, invert_affine
from ..images import read_image

__all__ = ["DetectorEval", "evaluate_with_detector", "faces_from_prepared"]

MISSED_NME = 1.0


@dataclass
class DetectorEval:
    """Per-face results in input order: ``nme_io`` / ``nme_ip`` (NaN where missed), ``found`` bool,
    ``other_boxes``: detections matching no annotated face (false boxes, or faces the data does not
    annotate)."""

    names: list[str]
    nme_io: np.ndarray
    nme_ip: np.ndarray
    found: np.ndarray
    other_boxes: int
    detector: str
    predictions: list[np.ndarray | None] = field(default_factory=list)

    def summary(self, threshold: float = 0.1) -> dict[str, Any]:
        with_misses = np.where(self.found, self.nme_io, MISSED_NME)
        found = self.nme_io[self.found]
        return {"detector": self.detector, "faces": len(self.names), "found": int(self.found.sum()),
                "missed": int((~self.found).sum()), "other_boxes": self.other_boxes,
                "missed_names": [n for n, f in zip(self.names, self.found) if not f],
                "nme_io_found": float(found.mean()) if found.size else float("nan"),
                "nme_ip_found": float(self.nme_ip[self.found].mean()) if found.size else float("nan"),
                "fr_io_found": metrics.failure_rate(found, threshold) if found.size else float("nan"),
                "fr_io": metrics.failure_rate(with_misses, threshold),
                "auc_io": metrics.auc(with_misses, threshold, "release")}


def evaluate_with_detector(aligner: Any, faces: Sequence[tuple[str, str | Path, np.ndarray]]) -> DetectorEval:
    """``faces``: ``(name, original image path, landmarks [K, 2] in its pixels)``; consecutive faces of
    one image share one detection run."""
    scheme = aligner.scheme
    names, io, ip, found, preds, other = [], [], [], [], [], 0
    for path, grouped in itertools.groupby(faces, key=lambda face: str(face[1])):
        group = list(grouped)
        result = aligner.predict(read_image(path), color="bgr")
        matches = match_faces(result.boxes, [np.asarray(f[2]) for f in group])
        other += len(result) - sum(m is not None for m in matches)
        for (name, _, landmarks), match in zip(group, matches):
            names.append(name)
            found.append(match is not None)
            if match is None:
                io.append(np.nan)
                ip.append(np.nan)
                preds.append(None)
                continue
            pred, gt = result.landmarks[match][None].astype(np.float64), np.asarray(landmarks, dtype=np.float64)[None]
            io.append(float(metrics.nme(pred, gt, scheme, "inter_ocular")[0]))
            ip.append(float(metrics.nme(pred, gt, scheme, "inter_pupil")[0]))
            preds.append(pred[0])
    return DetectorEval(names, np.array(io), np.array(ip), np.array(found, dtype=bool), other,
                        type(aligner.detector).__name__, preds)


def faces_from_prepared(samples: Sequence[Any], list_path: str | Path,
                        images_root: str | Path) -> list[tuple[str, Path, np.ndarray]]:
    """``(name, original image, landmarks in original pixels)`` for prepared test ``samples`` read from
    ``list_path``: originals from its crop sidecar, under ``images_root`` (the ``lgrn prepare --root``)."""
    sidecar = crops_path_for(Path(list_path))
    if not sidecar.is_file():
        raise FileNotFoundError(f"{sidecar}: no crop sidecar beside {list_path}, so the original images are unknown "
                                "(prepare the data with `lgrn prepare`, which writes it)")
    records = read_crops(sidecar)
    root = Path(images_root).resolve()
    faces = []
    for sample in samples:
        record = records.get(str(sample.name))
        if record is None:
            raise ValueError(f"{sidecar}: no record for {sample.name!r} of {list_path}")
        original = (root / record.original).resolve()
        if not original.is_relative_to(root):
            raise ValueError(f"{sidecar}: record {sample.name!r}: field 'original' {record.original!r} leaves the "
                             f"images root {root}")
        if not original.is_file():
            raise FileNotFoundError(f"{sidecar}: record {sample.name!r}: original image {original} not found (is "
                                    f"--images-root the folder given to `lgrn prepare --root`?)")
        landmarks = apply_affine(np.asarray(sample.landmarks, dtype=np.float64), invert_affine(record.matrix))
        faces.append((str(sample.name), original, landmarks))
    return faces
