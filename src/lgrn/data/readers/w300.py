"""300-W (Sagonas et al.) in its usual layout: ``.pts`` files (``version: 1``, ``n_points: 68``, ``{``,
one ``x y`` line per landmark, ``}``; coordinates are 1-BASED, so 1 is subtracted) beside a ``.jpg`` or
``.png`` of the same stem, in ``lfpw/{trainset,testset}``, ``helen/{trainset,testset}``, ``afw`` and
``ibug``. Splits: ``train`` = LFPW train + HELEN train + AFW (3,148 faces), ``common`` = LFPW test + HELEN
test (554), ``challenging`` = iBUG (135), ``full`` = common + challenging (689) with the subset flags
``{"common": 0/1, "challenging": 0/1}`` on each sample. Sample names are paths relative to the root.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..sample import Sample
from .release_list import _read_lines, parse_number

__all__ = ["read_pts", "read_300w", "W300_SPLITS"]

W300_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("lfpw/trainset", "helen/trainset", "afw"),
    "common": ("lfpw/testset", "helen/testset"),
    "challenging": ("ibug",),
}
_IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg", ".JPG", ".PNG", ".JPEG")


MAX_POINTS = 10_000


def read_pts(path: str | Path, allow_nan: bool = False, num_landmarks: int | None = None) -> np.ndarray:
    """Landmarks ``[K, 2]`` float64 in 0-based pixels from a ``.pts`` file (errors name file and line;
    non-finite values are errors unless ``allow_nan``; ``num_landmarks``, when given, is the count the
    header's ``n_points`` must state)."""
    path = Path(path)
    lines = _read_lines(path)
    # keep the 1-based line numbers of non-blank lines for messages
    rows = [(no, line.strip()) for no, line in enumerate(lines, start=1) if line.strip()]
    if len(rows) < 3:
        raise ValueError(f"{path}: too short for a .pts file ({len(rows)} non-blank lines)")
    header: dict[str, str] = {}
    pos = 0
    while pos < len(rows) and rows[pos][1] != "{":
        no, text = rows[pos]
        key, sep, value = text.partition(":")
        if not sep:
            raise ValueError(f"{path.name}:{no}: expected 'key: value' header or '{{', got {text!r}")
        header[key.strip()] = value.strip()
        pos += 1
    if pos == len(rows):
        raise ValueError(f"{path.name}: no '{{' line opening the landmark block")
    if "n_points" not in header:
        raise ValueError(f"{path.name}:{rows[pos][0]}: header has no 'n_points' before '{{'")
    expected = num_landmarks
    try:
        num_landmarks = int(header["n_points"])
    except ValueError:
        raise ValueError(f"{path.name}: field n_points: {header['n_points']!r} is not an integer") from None
    if not 1 <= num_landmarks <= MAX_POINTS:
        raise ValueError(f"{path.name}: field n_points: {num_landmarks} is not a landmark count (1..{MAX_POINTS})")
    if expected is not None and num_landmarks != expected:
        raise ValueError(f"{path.name}: field n_points: {num_landmarks}, but this dataset has {expected} landmarks")
    body = rows[pos + 1:]
    landmarks = np.empty((num_landmarks, 2), dtype=np.float64)
    for k in range(num_landmarks):
        if k >= len(body) or body[k][1] == "}":
            line_no = body[k][0] if k < len(body) else rows[-1][0]
            got = "the closing brace" if k < len(body) else "the end of the file"
            raise ValueError(f"{path.name}:{line_no}: expected landmark {k} of {num_landmarks} (n_points), got {got}")
        no, text = body[k]
        tokens = text.split()
        where = f"{path.name}:{no}"
        if len(tokens) != 2:
            raise ValueError(f"{where}: landmark {k}: expected 2 numbers (x y), got {len(tokens)} field(s)")
        landmarks[k] = [parse_number(tokens[0], where, f"field 1 (x of landmark {k})", allow_nan),
                        parse_number(tokens[1], where, f"field 2 (y of landmark {k})", allow_nan)]
    if len(body) == num_landmarks or body[num_landmarks][1] != "}":
        no, text = body[num_landmarks] if len(body) > num_landmarks else rows[-1]
        raise ValueError(f"{path.name}:{no}: expected '}}' after {num_landmarks} landmarks (n_points), got {text!r}")
    if len(body) > num_landmarks + 1:
        raise ValueError(f"{path.name}:{body[num_landmarks + 1][0]}: unexpected content after the closing brace")
    return landmarks - 1.0  # .pts coordinates are 1-based (MATLAB convention)


def _image_for(pts: Path) -> Path:
    for suffix in _IMAGE_SUFFIXES:
        candidate = pts.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{pts}: no image beside it (looked for {pts.stem} with .jpg or .png)")


def _read_folder(root: Path, folder: str, allow_nan: bool) -> list[Sample]:
    samples = []
    for pts in sorted((root / folder).glob("*.pts")):
        image = _image_for(pts)
        samples.append(Sample(image_path=image, name=image.relative_to(root).as_posix(),
                              landmarks=read_pts(pts, allow_nan, num_landmarks=68), source=str(pts)))
    return samples


def read_300w(root: str | Path, split: str = "train", allow_nan: bool = False) -> list[Sample]:
    """Read a 300-W split (``train``, ``common``, ``challenging`` or ``full``) from ``root``.

    Missing sub-folders are skipped with a warning summarising them, as long as at least one folder of
    the split exists. ``full`` samples carry ``attributes = {"common": 0/1, "challenging": 0/1}``.
    """
    root = Path(root)
    if split not in (*W300_SPLITS, "full"):
        raise ValueError(f"unknown 300W split {split!r}: expected train, common, challenging or full")
    parts = ("common", "challenging") if split == "full" else (split,)
    folders = [(part, folder) for part in parts for folder in W300_SPLITS[part]]
    present = [(part, folder) for part, folder in folders if (root / folder).is_dir()]
    if not present:
        raise FileNotFoundError(f"300W split {split!r}: none of its folders exists under {root} "
                                f"(expected {', '.join(f for _, f in folders)})")
    missing = [folder for _, folder in folders if not (root / folder).is_dir()]
    if missing:
        warnings.warn(f"300W split {split!r} under {root}: skipped missing folder(s) {', '.join(missing)}; "
                      f"read {', '.join(f for _, f in present)}", stacklevel=2)
    samples = []
    for part, folder in present:
        found = _read_folder(root, folder, allow_nan)
        if split == "full":
            for sample in found:
                sample.attributes = {"common": int(part == "common"), "challenging": int(part == "challenging")}
        samples.extend(found)
    if not samples:
        raise FileNotFoundError(f"300W split {split!r}: no .pts files in {', '.join(f for _, f in present)} "
                                f"under {root}")
    return samples
