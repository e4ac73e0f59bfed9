"""The release's processed layout (docs/data_formats.md): list files with one face per line (2K coordinates,
optionally 2K per-coordinate weights, then the image path relative to the root, which is also the
sample name), the subset-flag file ``*_attr.txt``, and lgrn's crop sidecar ``*_crops.jsonl`` written by
``lgrn prepare`` (original image path and the 2x3 original->crop matrix per name). Readers and writers
live together so the format is defined once; every parse error names the file, the 1-based line and
the field.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...atomic import write_text_atomic as write_lines_atomic
from ...images import image_size
from ...landmarks import scheme_for_num_landmarks
from ...textio import read_text_file
from ..sample import Sample

__all__ = ["read_release_list", "read_release_lists", "read_attributes", "format_release_line",
           "write_text_atomic", "CropRecord", "read_crops", "write_crops", "crops_path_for", "parse_number",
           "confined_path"]


def parse_number(token: str, where: str, field: str, allow_nan: bool = False) -> float:
    """``float(token)`` that must be finite (unless ``allow_nan``: then 'nan'/'inf' pass through), else a
    ValueError naming ``where`` ("file:line") and the field."""
    try:
        if "_" in token:         # Python's float() accepts 4_40.5; an annotation file must not
            raise ValueError
        value = float(token)
    except ValueError:
        raise ValueError(f"{where}: {field}: {token!r} is not a number") from None
    if not allow_nan and not np.isfinite(value):
        raise ValueError(f"{where}: {field}: {token!r} is not a finite number")
    return value


def _coordinate_field(index: int) -> str:
    """Human name of 0-based token ``index`` among interleaved coordinates: 'field 57 (x of landmark 28)'."""
    return f"field {index + 1} ({'xy'[index % 2]} of landmark {index // 2})"


def _parse_coordinates(tokens: list[str], where: str) -> np.ndarray:
    """Interleaved coordinates as float64; the vectorised path is tried first (lists have 10^6 numbers),
    the per-token path only runs to name the bad field."""
    try:
        if not any("_" in tok for tok in tokens):
            values = np.array(list(map(float, tokens)), dtype=np.float64)
            if np.all(np.isfinite(values)):
                return values
    except ValueError:
        pass
    return np.asarray([parse_number(tok, where, _coordinate_field(i)) for i, tok in enumerate(tokens)])


MIN_IMAGE_SIDE = 8


def check_landmarks_in_image(landmarks: np.ndarray, width: int, height: int, where: str) -> None:
    """Landmarks may leave the image a little (WFLW has points outside), not by more than the image's own
    size, and the image must be at least MIN_IMAGE_SIDE pixels: errors name ``where`` and the field."""
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ValueError(f"{where}: image: {width} x {height} pixels is too small for a face "
                         f"(at least {MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE})")
    size = np.array([width, height], dtype=np.float64)
    bad = np.argwhere((landmarks < -size) | (landmarks > 2 * size))
    if len(bad):
        k, axis = (int(v) for v in bad[0])
        raise ValueError(f"{where}: {_coordinate_field(2 * k + axis)} = {landmarks[k, axis]:g} lies far outside the "
                         f"{width} x {height} image (more than its size beyond the border)")


def _read_lines(path: Path) -> list[str]:
    return read_text_file(path).splitlines()


def nonblank_lines(path: Path) -> Iterator[tuple[int, str, str]]:
    """Yield ``(line_no, where, line)`` for each non-blank line of an annotation file: the 1-based line
    number (blank lines counted) and ``where`` = ``file:line`` for error messages."""
    for line_no, line in enumerate(_read_lines(path), start=1):
        if line.strip():
            yield line_no, f"{path.name}:{line_no}", line


def json_objects(path: Path, what: str = "a JSON object") -> Iterator[tuple[int, str, dict]]:
    """Yield ``(line_no, where, dict)`` for each non-blank line of a JSON-lines file; a line that is not
    a JSON object is an error naming the file and line."""
    for line_no, where, line in nonblank_lines(path):
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not valid JSON ({err.msg})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected {what}, got {type(data).__name__}")
        yield line_no, where, data


def confined_path(root: str | Path, relative: str, where: str, field: str = "image") -> Path:
    """``root / relative`` when it stays inside ``root`` (a relative path without ``..`` escaping it),
    else a ValueError naming ``where`` (file:line) and the field: paths read from data files never
    leave their root."""
    root = Path(root)
    candidate = Path(relative)
    if candidate.is_absolute() or candidate.drive:
        raise ValueError(f"{where}: {field}: {relative!r} is an absolute path; paths in annotation files must be "
                         f"relative to their root ({root})")
    resolved_root = root.resolve()
    if not (resolved_root / candidate).resolve().is_relative_to(resolved_root):
        raise ValueError(f"{where}: {field}: {relative!r} leaves its root {root}")
    return root / candidate


def crops_path_for(source: str | Path) -> Path:
    """The crop sidecar beside a list file: ``train_98pt.txt`` -> ``train_98pt_crops.jsonl``."""
    source = Path(source)
    return source.with_name(source.stem + "_crops.jsonl")


def read_release_list(root: str | Path, source: str | Path, num_landmarks: int,
                      check_images: bool = True) -> list[Sample]:
    """Read a processed list file: per line ``x0 y0 ... x{K-1} y{K-1} [w0 ... w{2K-1}] name``.

    The 2K optional weights are read as visibility (a landmark is visible when both of its weights are
    > 0; the release reads and ignores them). ``name`` is the image path relative to ``root``. Blank lines
    are skipped; any other token count is an error; so is a missing image when ``check_images``. When the
    crop sidecar written by ``lgrn prepare`` sits beside ``source``, each sample's ``crop_matrix`` is set.
    """
    root, source = Path(root), Path(source)
    if num_landmarks < 1:
        raise ValueError(f"num_landmarks must be >= 1, got {num_landmarks}")
    short, long_ = 2 * num_landmarks + 1, 4 * num_landmarks + 1
    sidecar = crops_path_for(source)
    crops = read_crops(sidecar) if sidecar.is_file() else {}
    samples: list[Sample] = []
    first_line: dict[str, int] = {}
    for line_no, where, line in nonblank_lines(source):
        tokens = line.split()
        if len(tokens) not in (short, long_):
            raise ValueError(f"{where}: expected {short} fields (2x{num_landmarks} coordinates + image) or {long_} "
                             f"(+ 2x{num_landmarks} weights), got {len(tokens)}; is num_landmarks right? "
                             "(image names cannot contain spaces)")
        landmarks = _parse_coordinates(tokens[:2 * num_landmarks], where).reshape(num_landmarks, 2)
        visibility = None
        if len(tokens) == long_:
            weights = np.asarray([parse_number(tok, where, f"field {i + 1} (weight {i - 2 * num_landmarks})")
                                  for i, tok in enumerate(tokens[2 * num_landmarks:-1], start=2 * num_landmarks)])
            visibility = np.all(weights.reshape(num_landmarks, 2) > 0, axis=1)
        name = tokens[-1]
        image_path = confined_path(root, name, where, f"field {len(tokens)} (image)")
        if name in first_line:
            raise ValueError(f"{where}: field {len(tokens)} (image): {name!r} is listed twice (first on line "
                             f"{first_line[name]})")
        first_line[name] = line_no
        if check_images:
            if not image_path.is_file():
                raise FileNotFoundError(f"{where}: field {len(tokens)} (image): image not found: {image_path}")
            size = image_size(image_path)
            if size is not None:
                check_landmarks_in_image(landmarks, size[0], size[1], where)
        record = crops.get(name)
        samples.append(Sample(image_path=image_path, name=name, landmarks=landmarks, visibility=visibility,
                              crop_matrix=None if record is None else record.matrix.copy(),
                              source=f"{source}:{line_no}"))
    return samples


def read_release_lists(roots: str, sources: str, num_landmarks: int, check_images: bool = True) -> list[Sample]:
    """Several root/source pairs given as space-separated strings, paired by position (release §5.1)."""
    root_list, source_list = str(roots).split(), str(sources).split()
    if not source_list:
        raise ValueError("no annotation source given")
    if len(root_list) != len(source_list):
        raise ValueError(f"{len(root_list)} root(s) {root_list} but {len(source_list)} source(s) {source_list}: "
                         "give one root per source, paired by position")
    samples: list[Sample] = []
    for root, source in zip(root_list, source_list):
        samples.extend(read_release_list(root, source, num_landmarks, check_images))
    return samples


def read_attributes(path: str | Path, samples: Sequence[Sample],
                    subsets: Sequence[str] | None = None) -> list[Sample]:
    """Read a subset-flag file (``test_98pt_attr.txt``): one line per sample, in the list's order, with
    ``len(subsets)`` 0/1 flags then the sample name. Lines are matched by order AND checked by name.
    ``subsets`` defaults to the built-in scheme for the samples' landmark count (WFLW: pose, expression,
    illumination, makeup, occlusion, blur; 300W: common, challenging). Sets ``sample.attributes`` in
    place and returns the samples."""
    path = Path(path)
    if subsets is None:
        if not samples:
            raise ValueError(f"{path}: cannot infer the subset names from an empty sample list; pass subsets")
        subsets = scheme_for_num_landmarks(samples[0].num_landmarks).subsets
        if not subsets:
            raise ValueError(f"{path}: the built-in {samples[0].num_landmarks}-landmark scheme has no subsets; "
                             "pass subsets explicitly")
    subsets = list(subsets)
    rows = [(where, line.split()) for _, where, line in nonblank_lines(path)]
    if len(rows) != len(samples):
        raise ValueError(f"{path}: {len(rows)} attribute line(s) for {len(samples)} sample(s); the file must have "
                         "one line per sample in the same order")
    attributes = []
    for (where, tokens), sample in zip(rows, samples):
        if len(tokens) != len(subsets) + 1:
            raise ValueError(f"{where}: expected {len(subsets) + 1} fields ({len(subsets)} flags {subsets} + name), "
                             f"got {len(tokens)}")
        if tokens[-1] != sample.name:
            raise ValueError(f"{where}: field {len(tokens)} (name): {tokens[-1]!r} does not match sample "
                             f"{sample.name!r} ({sample.source}); the attribute file must follow the list's order")
        flags = {}
        for i, (subset, tok) in enumerate(zip(subsets, tokens)):
            if tok not in ("0", "1"):
                raise ValueError(f"{where}: field {i + 1} ({subset}): {tok!r} is not 0 or 1")
            flags[subset] = int(tok)
        attributes.append(flags)
    for sample, flags in zip(samples, attributes):  # assign only once the whole file is valid
        sample.attributes = flags
    return list(samples)


def format_release_line(name: str, landmarks: np.ndarray, visibility: np.ndarray | None = None,
                        decimals: int = 6) -> str:
    """One list line (no newline); with ``visibility`` the 2K weights (1 1 visible, 0 0 occluded) are added."""
    if any(c.isspace() for c in name):
        raise ValueError(f"image name {name!r} contains whitespace, which the list format cannot hold")
    values = [f"{v:.{decimals}f}" for v in np.asarray(landmarks, dtype=np.float64).reshape(-1)]
    if visibility is not None:
        values += ["1" if v else "0" for v in np.repeat(np.asarray(visibility, dtype=bool), 2)]
    return " ".join(values + [name])


def write_text_atomic(path: str | Path, lines: Iterable[str]) -> None:
    """Write lines to ``path`` atomically (``lgrn.atomic``), so readers never see half a file."""
    write_lines_atomic(path, "".join(line + "\n" for line in lines))


@dataclass
class CropRecord:
    """How one prepared crop was cut: ``matrix [2, 3]`` maps ``original`` image pixels to crop pixels
    (``size`` x ``size``); ``original`` is relative to the dataset root given to ``lgrn prepare``."""

    name: str
    original: str
    matrix: np.ndarray
    size: int


def write_crops(path: str | Path, records: Iterable[CropRecord]) -> None:
    """Write the crop sidecar (JSON lines: name, original, matrix, size), atomically."""
    write_text_atomic(path, (json.dumps({"name": r.name, "original": r.original, "size": int(r.size),
                                         "matrix": [[float(v) for v in row] for row in r.matrix]})
                             for r in records))


def read_crops(path: str | Path) -> dict[str, CropRecord]:
    """Read a crop sidecar into ``{name: CropRecord}`` (file order). Map crop-pixel predictions back to
    the original image with ``apply_affine(points, invert_affine(record.matrix))``."""
    path = Path(path)
    records: dict[str, CropRecord] = {}
    for _, where, data in json_objects(path):
        for key in ("name", "original", "matrix", "size"):
            if key not in data:
                raise ValueError(f"{where}: missing field '{key}'")
        try:
            matrix = np.asarray(data["matrix"], dtype=np.float64)
        except (TypeError, ValueError):
            matrix = np.zeros(0)
        if matrix.shape != (2, 3) or not np.all(np.isfinite(matrix)):
            raise ValueError(f"{where}: field 'matrix' must be 2 rows of 3 finite numbers, got {data['matrix']!r}")
        if str(data["name"]) in records:
            raise ValueError(f"{where}: field 'name': {data['name']!r} appears twice")
        size = data["size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"{where}: field 'size' must be a positive integer, got {size!r}")
        for key in ("name", "original"):
            if not isinstance(data[key], str) or not data[key]:
                raise ValueError(f"{where}: field '{key}' must be a non-empty string, got {data[key]!r}")
        records[str(data["name"])] = CropRecord(str(data["name"]), str(data["original"]), matrix, size)
    return records
