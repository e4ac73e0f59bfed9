"""The official WFLW annotations (Wu et al., CVPR 2018) as distributed in ``WFLW_annotations``:
``list_98pt_rect_attr_train_test/list_98pt_rect_attr_{train,test}.txt`` with 207 fields per face (98 x/y
pairs, the box x1 y1 x2 y2, six 0/1 attribute flags pose / expression / illumination / make-up /
occlusion / blur, the image path under ``WFLW_images/``), and the per-subset test lists
``list_98pt_test/list_98pt_test_{largepose,...}.txt`` (same lines, one file per subset). Several faces
can share an image, so sample names get the face's index within its image:
``46--Jockey/46_Jockey_Jockey_46_439.jpg`` -> ``46--Jockey/46_Jockey_Jockey_46_439_0.jpg``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from ..sample import Sample
from .release_list import _coordinate_field, confined_path, nonblank_lines, parse_number

__all__ = ["WFLW_ATTRIBUTES", "WFLW_SUBSET_FILES", "read_wflw_official", "read_wflw_subset_lists", "face_name"]

NUM_LANDMARKS = 98
# The six attribute flags of the official lists, in file order (= the wflw98 scheme's subsets).
WFLW_ATTRIBUTES = ("pose", "expression", "illumination", "makeup", "occlusion", "blur")
# subset list file suffix -> attribute name (the files say "largepose" where the flags say pose)
WFLW_SUBSET_FILES = {"largepose": "pose", "expression": "expression", "illumination": "illumination",
                     "makeup": "makeup", "occlusion": "occlusion", "blur": "blur"}
_NUM_FIELDS = 2 * NUM_LANDMARKS + 4 + len(WFLW_ATTRIBUTES) + 1  # 207


def face_name(image: str, index: int) -> str:
    """Unique sample name of face ``index`` (0-based, in file order) of ``image``: ``a/b.jpg`` -> ``a/b_0.jpg``."""
    path = PurePosixPath(image)
    return str(path.with_name(f"{path.stem}_{index}{path.suffix}"))


def _parse_line(tokens: list[str], where: str,
                allow_nan: bool = False) -> tuple[np.ndarray, np.ndarray, dict[str, int], str]:
    if len(tokens) != _NUM_FIELDS:
        raise ValueError(f"{where}: expected {_NUM_FIELDS} fields (196 coordinates, 4 box values, 6 attribute "
                         f"flags, image path), got {len(tokens)}")
    coords = [parse_number(tok, where, _coordinate_field(i), allow_nan) for i, tok in enumerate(tokens[:196])]
    box = [parse_number(tokens[196 + i], where, f"field {197 + i} (box {key})")
           for i, key in enumerate(("x1", "y1", "x2", "y2"))]
    attributes = {}
    for i, key in enumerate(WFLW_ATTRIBUTES):
        tok = tokens[200 + i]
        if tok not in ("0", "1"):
            raise ValueError(f"{where}: field {201 + i} ({key} flag): {tok!r} is not 0 or 1")
        attributes[key] = int(tok)
    image = tokens[-1].replace("\\", "/")
    return np.asarray(coords).reshape(NUM_LANDMARKS, 2), np.asarray(box, dtype=np.float64), attributes, image


def read_wflw_official(annotation_file: str | Path, images_dir: str | Path,
                       check_images: bool = True, allow_nan: bool = False) -> list[Sample]:
    """Read an official WFLW list (``list_98pt_rect_attr_{train,test}.txt``).

    ``images_dir`` is the ``WFLW_images`` folder. Each sample has ``bbox`` (the official box), the six
    attribute flags and the name ``face_name(image, index)``; ``image_path`` is the full image.
    Non-finite coordinates are an error unless ``allow_nan`` (``lgrn prepare`` skips such faces).
    """
    annotation_file, images_dir = Path(annotation_file), Path(images_dir)
    samples: list[Sample] = []
    faces_per_image: dict[str, int] = {}
    for line_no, where, line in nonblank_lines(annotation_file):
        tokens = line.split()
        landmarks, box, attributes, image = _parse_line(tokens, where, allow_nan)
        image_path = confined_path(images_dir, image, where, f"field {_NUM_FIELDS} (image)")
        if check_images and not image_path.is_file():
            raise FileNotFoundError(f"{where}: field {_NUM_FIELDS} (image): image not found: {image_path}")
        index = faces_per_image.get(image, 0)
        faces_per_image[image] = index + 1
        samples.append(Sample(image_path=image_path, name=face_name(image, index), landmarks=landmarks, bbox=box,
                              attributes=attributes, source=f"{annotation_file}:{line_no}"))
    return samples


def _line_key(image: str, landmarks: np.ndarray) -> tuple:
    # Lines are matched by content: the image plus the coordinates (rounded, so a copy written with other
    # whitespace or trailing zeros still matches).
    return (image, tuple(np.round(landmarks, 3).reshape(-1).tolist()))


def read_wflw_subset_lists(annotations_dir: str | Path, samples: Sequence[Sample]) -> dict[str, list[str]]:
    """Membership of ``samples`` (from :func:`read_wflw_official` on the test list) in the official
    per-subset lists ``list_98pt_test_{largepose,expression,illumination,makeup,occlusion,blur}.txt``.

    ``annotations_dir`` is ``WFLW_annotations`` (the files are looked up in its ``list_98pt_test/``
    folder, then in the folder itself). Returns ``{attribute: [sample names]}`` with the attribute names
    of the flags (``largepose`` -> ``pose``). A subset line that matches no sample is an error.
    """
    annotations_dir = Path(annotations_dir)
    index: dict[tuple, list[str]] = {}
    for sample in samples:
        # the key uses the image path as written in the list: the sample name without its face index
        name = PurePosixPath(sample.name)
        stem, sep, face = name.stem.rpartition("_")
        if not sep or not face.isdigit():
            raise ValueError(f"{sample.source}: sample name {sample.name!r} is not a WFLW face name (<image>_<index>)")
        image = str(name.with_name(stem + name.suffix))
        index.setdefault(_line_key(image, sample.landmarks), []).append(sample.name)
    result: dict[str, list[str]] = {}
    for suffix, attribute in WFLW_SUBSET_FILES.items():
        file_name = f"list_98pt_test_{suffix}.txt"
        candidates = [annotations_dir / "list_98pt_test" / file_name, annotations_dir / file_name]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise FileNotFoundError(f"WFLW subset list not found: looked for {candidates[0]} and {candidates[1]}")
        names: list[str] = []
        for _, where, line in nonblank_lines(path):
            tokens = line.split()
            landmarks, _, _, image = _parse_line(tokens, where)
            matches = index.get(_line_key(image, landmarks))
            if not matches:
                raise ValueError(f"{where}: this face ({image}) is not among the {len(samples)} given samples")
            names.extend(m for m in matches if m not in names)
        result[attribute] = names
    return result
