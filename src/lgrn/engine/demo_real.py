"""The real-face part of ``lgrn demo``: the shipped 68-point model (``FaceAligner.from_pretrained()``,
default face detector) on real photos, drawn into ``real_faces.png`` with the numbers in
``real_faces.json``.

Photos come from ``--photos DIR`` (your own, searched recursively) or, by default, from the real samples
beside a source checkout (``$LGRN_SHARED_DATA`` or ``../shared/data``): the WFLW test photos and every
50th face of the 300-W common test set. Faces with a ``.pts`` annotation beside the image also get their
inter-ocular NME against it (the detected face whose centre lies inside the annotated landmark box). No
real photo available: the part is skipped with a log line saying how to give one.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..atomic import write_bytes_atomic
from ..data.readers import read_pts
from ..images import ImageReadError, read_image
from ..inference import FaceAligner
from ..metrics import nme
from ..predict import draw_landmarks
from ..pretrained import DEFAULT_MODEL
from ..atomic import write_text_atomic

logger = logging.getLogger("lgrn")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
REPO = Path(__file__).resolve().parents[3]


def default_photos() -> list[Path]:
    """Real sample photos beside a source checkout (WFLW test photos, 300-W common test faces)."""
    root = Path(os.environ.get("LGRN_SHARED_DATA") or REPO.parent / "shared" / "data")
    photos = sorted((root / "wflw" / "WFLW_images").rglob("*.jpg"))[:6]
    for half in ("helen/testset", "lfpw/testset"):
        photos += sorted((root / "300w_recropped" / half).glob("*.jpg"))[::50]
    return photos


def _tile(image: np.ndarray, cell: int) -> np.ndarray:
    scale = cell / max(image.shape[:2])
    small = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA)
    tile = np.zeros((cell, cell, 3), dtype=np.uint8)
    tile[:small.shape[0], :small.shape[1]] = small
    return tile


def _annotated_nme(path: Path, result: Any, scheme: Any) -> float | None:
    pts = path.with_suffix(".pts")
    if not pts.is_file() or not len(result):
        return None
    gt = read_pts(pts)
    if gt.shape[0] != scheme.num_landmarks:
        return None
    centres = (result.boxes[:, :2] + result.boxes[:, 2:]) / 2
    inside = np.all((centres >= gt.min(axis=0)) & (centres <= gt.max(axis=0)), axis=1)
    if not inside.any():
        return None
    face = int(np.flatnonzero(inside)[0])
    return float(nme(result.landmarks[face][None].astype(np.float64), gt[None], scheme, "inter_ocular")[0])


def run_real_faces(out: Path, photos: Path | None = None, cell: int = 256, columns: int = 5) -> dict | None:
    """Landmarks of the shipped model on real photos -> ``out/real_faces.png`` + ``real_faces.json``."""
    files = (sorted(p for p in photos.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if photos is not None
             else default_photos())
    if not files:
        logger.info("real faces: no photo found (give a folder of your own with `lgrn demo --photos DIR`); skipped")
        return None
    aligner = FaceAligner.from_pretrained()
    tiles, records = [], []
    for path in files:
        try:
            image = read_image(path)
        except ImageReadError as err:
            logger.info("real faces: skipped %s", err)
            continue
        result = aligner.predict(image, color="bgr")
        error = _annotated_nme(path, result, aligner.scheme)
        records.append({"image": str(path), "faces": len(result), "nme_inter_ocular": error})
        tile = _tile(draw_landmarks(image, result), cell)
        label = f"{len(result)} face(s)" + ("" if error is None else f", NME {100 * error:.1f}%")
        cv2.putText(tile, label, (4, cell - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    if not tiles:
        return None
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    grid = np.concatenate([np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)])
    ok, encoded = cv2.imencode(".png", grid)
    if not ok:
        raise RuntimeError("cannot encode the real-face grid")
    write_bytes_atomic(out / "real_faces.png", encoded.tobytes())
    errors = [r["nme_inter_ocular"] for r in records if r["nme_inter_ocular"] is not None]
    summary = {"model": DEFAULT_MODEL, "detector": type(aligner.detector).__name__, "images": len(records),
               "faces": sum(r["faces"] for r in records), "annotated_faces_found": len(errors),
               "mean_nme_inter_ocular": float(np.mean(errors)) if errors else None, "records": records}
    write_text_atomic(out / "real_faces.json", json.dumps(summary, indent=2) + "\n")
    line = (f"shipped model {DEFAULT_MODEL} on {summary['images']} real photo(s): {summary['faces']} face(s) found"
            + (f"; mean inter-ocular NME {100 * summary['mean_nme_inter_ocular']:.2f}% on the "
               f"{len(errors)} annotated 300-W test face(s) (default-detector crops)" if errors else ""))
    logger.info(line)
    print(line + f"\nwritten to {out}: real_faces.png, real_faces.json")
    return summary
