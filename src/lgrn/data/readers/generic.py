"""A generic annotation format for user-defined landmark schemes, in two spellings chosen by extension.
CSV (``.csv``): a header ``image,x0,y0,...,x{K-1},y{K-1}`` optionally followed by ``v0,...,v{K-1}``
(1 visible, 0 occluded), then one face per row. JSON lines (``.jsonl``/``.json``): one object per line
with ``image``, ``landmarks`` ([[x, y], ...]) and optional ``visibility`` ([0/1 or bool, ...]), ``bbox``
([x1, y1, x2, y2]) and ``attributes`` ({name: 0/1}). Image paths are relative to the annotation file;
the sample name is that relative path (with a face index suffix when an image has several faces).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from ..sample import Sample
from ...textio import read_text_file
from .release_list import json_objects, parse_number
from .wflw import face_name

__all__ = ["read_generic"]


def _check_image(path: Path, image: str, where: str, field: str, check_images: bool) -> Path:
    if not image:
        raise ValueError(f"{where}: {field}: empty image path")
    image_path = path.parent / image
    if check_images and not image_path.is_file():
        raise FileNotFoundError(f"{where}: {field}: image not found: {image_path}")
    return image_path


def _parse_flag(value: Any, where: str, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, str)) and str(value).strip() in ("0", "1", "0.0", "1.0"):
        return float(value) == 1.0
    raise ValueError(f"{where}: {field}: {value!r} is not 0 or 1")


def _read_csv(path: Path, num_landmarks: int | None) -> list[dict]:
    rows = list(csv.reader(io.StringIO(read_text_file(path), newline="")))
    if not rows:
        raise ValueError(f"{path}: empty CSV file (expected a header image,x0,y0,...)")
    header = [h.strip() for h in rows[0]]
    if header[:1] != ["image"]:
        raise ValueError(f"{path.name}:1: column 1 must be 'image', got {header[:1]}")
    # K from the x columns, so a misspelt y column is reported as such rather than as a count mismatch
    k = sum(1 for h in header if h[:1] == "x" and h[1:].isdigit()) if num_landmarks is None else num_landmarks
    coords = [f"{axis}{i}" for i in range(k) for axis in "xy"]
    with_vis = len(header) == 1 + 3 * k
    expected = ["image"] + coords + ([f"v{i}" for i in range(k)] if with_vis else [])
    if k < 1 or header != expected:
        bad = next((i for i, (a, b) in enumerate(zip(header, expected)) if a != b), min(len(header), len(expected)))
        got = header[bad] if bad < len(header) else "(end of header)"
        want = expected[bad] if bad < len(expected) else "(end of header)"
        raise ValueError(f"{path.name}:1: column {bad + 1}: expected {want!r}, got {got!r} "
                         f"(header image,x0,y0,...,x{k - 1},y{k - 1}[,v0..v{k - 1}] for {k} landmarks)")
    records = []
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path.name}:{line_no}"
        if len(row) != len(header):
            raise ValueError(f"{where}: expected {len(header)} columns like the header, got {len(row)}")
        values = [parse_number(row[1 + i], where, f"column {i + 2} ({coords[i]})") for i in range(2 * k)]
        visibility = None
        if with_vis:
            visibility = [_parse_flag(row[1 + 2 * k + i], where, f"column {2 * k + i + 2} (v{i})") for i in range(k)]
        records.append({"image": row[0].strip(), "landmarks": np.asarray(values).reshape(k, 2),
                        "visibility": visibility, "bbox": None, "attributes": {}, "where": where,
                        "field": "column 1 (image)", "line": line_no})
    return records


def _read_jsonl(path: Path, num_landmarks: int | None) -> list[dict]:
    records = []
    for line_no, where, data in json_objects(path, "a JSON object per line"):
        unknown = set(data) - {"image", "landmarks", "visibility", "bbox", "attributes"}
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
        for key in ("image", "landmarks"):
            if key not in data:
                raise ValueError(f"{where}: missing field '{key}'")
        if not isinstance(data["image"], str):
            raise ValueError(f"{where}: field 'image' must be a string, got {data['image']!r}")
        points = data["landmarks"]
        if not isinstance(points, list) or not points or any(not isinstance(p, list) or len(p) != 2 for p in points):
            raise ValueError(f"{where}: field 'landmarks' must be a list of [x, y] pairs")
        values = [parse_number(str(v), where, f"field 'landmarks' ({'xy'[j]} of landmark {i})")
                  for i, p in enumerate(points) for j, v in enumerate(p)]
        landmarks = np.asarray(values).reshape(-1, 2)
        visibility = data.get("visibility")
        if visibility is not None:
            if not isinstance(visibility, list) or len(visibility) != len(points):
                raise ValueError(f"{where}: field 'visibility' must list one 0/1 per landmark ({len(points)})")
            visibility = [_parse_flag(v, where, f"field 'visibility' (landmark {i})") for i, v in enumerate(visibility)]
        bbox = data.get("bbox")
        if bbox is not None:
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise ValueError(f"{where}: field 'bbox' must be [x1, y1, x2, y2]")
            bbox = np.asarray([parse_number(str(v), where, f"field 'bbox' (value {i + 1})")
                               for i, v in enumerate(bbox)])
        attributes = data.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise ValueError(f"{where}: field 'attributes' must be an object {{name: 0/1}}")
        attributes = {str(key): int(_parse_flag(v, where, f"field 'attributes.{key}'"))
                      for key, v in attributes.items()}
        records.append({"image": data["image"], "landmarks": landmarks, "visibility": visibility, "bbox": bbox,
                        "attributes": attributes, "where": where, "field": "field 'image'", "line": line_no})
    return records


def read_generic(path: str | Path, num_landmarks: int | None = None, check_images: bool = True) -> list[Sample]:
    """Read a generic CSV or JSON-lines annotation file (see the module docstring). ``num_landmarks`` is
    checked when given, else taken from the CSV header / the first JSON record; every face must agree."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        records = _read_csv(path, num_landmarks)
    elif suffix in (".jsonl", ".json"):
        records = _read_jsonl(path, num_landmarks)
    else:
        raise ValueError(f"{path}: unknown generic annotation format {suffix!r}: expected .csv, .jsonl or .json")
    if not records:
        raise ValueError(f"{path}: no annotations")
    expected = num_landmarks if num_landmarks is not None else len(records[0]["landmarks"])
    faces_per_image: dict[str, int] = {}
    for record in records:
        if len(record["landmarks"]) != expected:
            raise ValueError(f"{record['where']}: field 'landmarks': {len(record['landmarks'])} landmarks, "
                             f"expected {expected}")
        faces_per_image[record["image"]] = faces_per_image.get(record["image"], 0) + 1
    samples, seen = [], {}
    for record in records:
        image = record["image"].replace("\\", "/")
        image_path = _check_image(path, image, record["where"], record["field"], check_images)
        index = seen.get(record["image"], 0)
        seen[record["image"]] = index + 1
        name = face_name(image, index) if faces_per_image[record["image"]] > 1 else image
        visibility = None if record["visibility"] is None else np.asarray(record["visibility"], dtype=bool)
        samples.append(Sample(image_path=image_path, name=name, landmarks=record["landmarks"], bbox=record["bbox"],
                              attributes=record["attributes"], visibility=visibility,
                              source=f"{path}:{record['line']}"))
    return samples
