"""The files ``lgrn predict --format`` writes from its face records (one dict per face: ``image``, ``face``,
``box`` x1 y1 x2 y2, ``crop_box``, ``landmarks`` [[x, y], ...] in image pixels, ``image_size`` [height,
width], and for videos ``frame``, ``time``, ``track``):

- ``json``: ``landmarks.json`` = ``{"scheme", "num_landmarks", "faces": [records]}``;
- ``csv``: ``landmarks.csv``, one row per face: image, face, (frame, time, track,) box, x0 y0 x1 y1 ...;
- ``coco``: ``landmarks_coco.json``, the COCO keypoints layout: ``images`` (id, file_name, width, height),
  ``annotations`` (id, image_id, category_id 1, bbox [x, y, w, h], area, iscrowd 0, keypoints
  [x, y, v, ...] with v = 2, num_keypoints) and one ``categories`` entry "face" with keypoint names
  ``"0"..`` and the scheme's landmark graph as 1-based ``skeleton``;
- ``pts``: one iBUG ``.pts`` per face in ``pts/`` (``<image path without suffix>_<face>.pts``, frames as
  ``<video stem>_f<frame>_<face>.pts``), 1-based pixels as 300-W writes them, readable by
  ``lgrn.data.readers.read_pts``;
- ``openface``: ``landmarks_openface.csv``, OpenFace's wide layout: image, frame, face_id, timestamp,
  success, then all ``x_0 .. x_{K-1}`` and all ``y_0 .. y_{K-1}``.

All files are written through a temporary file and a rename, so a crash never leaves half a file.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import write_text_atomic

__all__ = ["FORMATS", "DEFAULT_FORMATS", "write_outputs", "coco_document", "pts_text", "pts_name"]

FORMATS = ("json", "csv", "coco", "pts", "openface")
DEFAULT_FORMATS = ("json", "csv")


def _csv_text(rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def csv_text(records: list[dict], num_landmarks: int, video: bool) -> str:
    header = (["image", "face"] + (["frame", "time", "track"] if video else []) + ["box_x1", "box_y1", "box_x2", "box_y2"]
              + [f"{axis}{k}" for k in range(num_landmarks) for axis in "xy"])
    rows = [[r["image"], r["face"]] + ([r["frame"], r["time"], r["track"]] if video else []) + r["box"]
            + [v for point in r["landmarks"] for v in point] for r in records]
    return _csv_text([header] + rows)


def coco_document(records: list[dict], scheme: Any) -> dict[str, Any]:
    """The COCO keypoints document of ``records`` (see the module docstring)."""
    images: dict[str, dict[str, Any]] = {}
    annotations = []
    for record in records:
        key = record["image"] if "frame" not in record else f"{record['image']}#frame{record['frame']}"
        if key not in images:
            height, width = record.get("image_size", (0, 0))
            images[key] = {"id": len(images) + 1, "file_name": key, "width": int(width), "height": int(height)}
        x1, y1, x2, y2 = record["box"]
        points = np.asarray(record["landmarks"], dtype=np.float64)
        keypoints = np.concatenate([points, np.full((len(points), 1), 2.0)], axis=1).reshape(-1)
        annotations.append({"id": len(annotations) + 1, "image_id": images[key]["id"], "category_id": 1,
                            "bbox": [x1, y1, round(x2 - x1, 3), round(y2 - y1, 3)],
                            "area": round((x2 - x1) * (y2 - y1), 3), "iscrowd": 0,
                            "keypoints": [round(float(v), 3) for v in keypoints], "num_keypoints": len(points)})
    edges = {tuple(sorted((int(a), int(b)))) for a, b in scheme.laplacian_edges() if a != b}
    category = {"id": 1, "name": "face", "supercategory": "person",
                "keypoints": [str(k) for k in range(scheme.num_landmarks)],
                "skeleton": [[a + 1, b + 1] for a, b in sorted(edges)]}
    return {"info": {"description": f"lgrn landmarks ({scheme.name})"}, "images": list(images.values()),
            "annotations": annotations, "categories": [category]}


def pts_text(landmarks: Sequence[Sequence[float]]) -> str:
    """An iBUG ``.pts`` file body: 1-based pixel coordinates (0-based + 1)."""
    points = np.asarray(landmarks, dtype=np.float64) + 1.0
    body = "".join(f"{x:.3f} {y:.3f}\n" for x, y in points)
    return f"version: 1\nn_points: {len(points)}\n{{\n{body}}}\n"


def pts_name(record: dict) -> str:
    """Relative path of a face's ``.pts`` (inside ``pts/``)."""
    stem = Path(record["image"]).with_suffix("").as_posix()
    if "frame" in record:
        return f"{stem}_f{int(record['frame']):06d}_{int(record['face'])}.pts"
    return f"{stem}_{int(record['face'])}.pts"


def openface_text(records: list[dict], num_landmarks: int) -> str:
    header = (["image", "frame", "face_id", "timestamp", "success"] + [f"x_{k}" for k in range(num_landmarks)]
              + [f"y_{k}" for k in range(num_landmarks)])
    order = {name: i + 1 for i, name in enumerate(dict.fromkeys(r["image"] for r in records))}
    rows = []
    for r in records:
        points = np.asarray(r["landmarks"], dtype=np.float64)
        frame = int(r["frame"]) + 1 if "frame" in r else order[r["image"]]        # 1-based, as OpenFace counts
        face_id = int(r["track"]) if "track" in r else int(r["face"])
        rows.append([r["image"], frame, face_id, r.get("time", 0.0), 1] + [round(float(v), 3) for v in points[:, 0]]
                    + [round(float(v), 3) for v in points[:, 1]])
    return _csv_text([header] + rows)


def write_outputs(out: Path, records: list[dict], scheme: Any, summary: dict,
                  formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """Write ``summary.json`` and each of ``formats`` into ``out``; returns the paths written."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown output format(s) {unknown}: choose from {', '.join(FORMATS)}")
    video = any("frame" in r for r in records) or summary.get("mode") == "video"
    written = []

    def put(path: Path, text: str) -> None:
        write_text_atomic(path, text)
        written.append(path)

    if "json" in formats:
        put(out / "landmarks.json", json.dumps({"scheme": scheme.name, "num_landmarks": scheme.num_landmarks,
                                                "faces": records}) + "\n")
    if "csv" in formats:
        put(out / "landmarks.csv", csv_text(records, scheme.num_landmarks, video))
    if "coco" in formats:
        put(out / "landmarks_coco.json", json.dumps(coco_document(records, scheme)) + "\n")
    if "openface" in formats:
        put(out / "landmarks_openface.csv", openface_text(records, scheme.num_landmarks))
    if "pts" in formats:
        for record in records:
            put(out / "pts" / pts_name(record), pts_text(record["landmarks"]))
    put(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    return written
