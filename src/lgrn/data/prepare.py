"""Official WFLW / 300-W / COFW releases -> the processed layout the shipped configs read (``lgrn prepare``;
docs/data_formats.md): ``OUT/{train,test}/Image/<name>`` face crops plus ``{train,test}_<K>pt.txt`` lists, the
test subset flags ``test_<K>pt_attr.txt`` (WFLW, 300W) and a crop sidecar ``*_crops.jsonl`` recording,
per name, the original image and the 2x3 original->crop matrix. Crops follow PFLD's rule used for the
release's data: a square of side ``scale`` (1.2) x the larger side of the ground-truth landmark box,
centred on it, black outside the image, resized to ``size`` (256). Re-running skips crops already on
disk with the same transform and rewrites the lists atomically; faces that cannot be used (unreadable
image, non-finite landmarks, degenerate box) are skipped and summarised.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..atomic import write_bytes_atomic
from ..geometry import apply_affine, crop_matrix, cut_crop, square_crop_box
from ..images import read_bgr8
from .readers import (CropRecord, confined_path, crops_path_for, format_release_line, read_300w, read_cofw, read_crops,
                      read_wflw_official, read_wflw_subset_lists, write_crops, write_text_atomic)
from .readers.w300 import W300_SPLITS
from .readers.wflw import WFLW_ATTRIBUTES
from .sample import Sample

__all__ = ["prepare_dataset", "prepare_split", "SplitReport", "DATASETS"]


@dataclass
class SplitReport:
    """What :func:`prepare_split` did: faces listed, crops written / reused, faces skipped with reasons."""

    split: str
    listed: int = 0
    written: int = 0
    reused: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> str:
        text = (f"{self.split}: {self.listed} face(s) listed ({self.written} crop(s) written, "
                f"{self.reused} already up to date)")
        for reason, names in self.skipped.items():
            shown = ", ".join(names[:5]) + (f", ... (+{len(names) - 5})" if len(names) > 5 else "")
            text += f"\n  skipped {len(names)}: {reason}: {shown}"
        return text


def read_image_bgr(path: str | Path) -> np.ndarray | None:
    """BGR uint8 [H, W, 3] (grayscale, alpha and 16-bit normalised by OpenCV), or None if unreadable.
    EXIF orientation is ignored: annotations refer to the stored pixel grid (as MATLAB and PIL read it)."""
    return read_bgr8(path, orientation=False)


def _write_image_atomic(path: Path, image: np.ndarray, jpeg_quality: int) -> None:
    suffix = path.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(suffix, image, params)
    if not ok:
        raise OSError(f"could not encode {path} as {suffix}")
    write_bytes_atomic(path, encoded.tobytes())


def prepare_split(samples: Sequence[Sample], out_dir: str | Path, list_name: str, originals: Sequence[str],
                  size: int = 256, scale: float = 1.2, with_visibility: bool = False,
                  subsets: Sequence[str] | None = None, jpeg_quality: int = 95, progress: bool = True,
                  split: str = "") -> SplitReport:
    """Cut the crops of ``samples`` into ``out_dir/Image/<name>`` and write ``out_dir/<list_name>`` (+ the
    ``_attr`` file when ``subsets`` is given, + the ``_crops.jsonl`` sidecar). ``originals[i]`` is the
    original image of sample i as recorded in the sidecar (relative to the dataset root).
    ``with_visibility`` adds the 2K weights (= visibility) to each line, as the COFW lists have."""
    from tqdm import tqdm

    if len(originals) != len(samples):
        raise ValueError(f"{len(samples)} samples but {len(originals)} original paths")
    out_dir = Path(out_dir)
    image_dir = out_dir / "Image"
    list_path = out_dir / list_name
    sidecar = crops_path_for(list_path)
    previous = read_crops(sidecar) if sidecar.is_file() else {}
    report = SplitReport(split or list_path.stem)
    done: dict[str, CropRecord] = {}
    lines: list[str] = []
    attr_lines: list[str] = []
    cache: tuple[str, np.ndarray | None] = ("", None)  # faces of one image are usually consecutive
    try:
        for sample, original in tqdm(list(zip(samples, originals)), desc=f"prepare {report.split}",
                                     disable=not progress, unit="face"):
            if with_visibility and sample.visibility is None:
                raise ValueError(f"{sample.source}: no visibility to write into {list_name}")
            landmarks = np.asarray(sample.landmarks, dtype=np.float64)
            if not np.all(np.isfinite(landmarks)):
                report.skipped.setdefault("landmarks with NaN or infinity", []).append(sample.name)
                continue
            box = square_crop_box(landmarks, scale) if np.ptp(landmarks, axis=0).max() > 0 else None
            if box is None:
                reason = "degenerate landmark box (all landmarks at one point)"
                report.skipped.setdefault(reason, []).append(sample.name)
                continue
            matrix = crop_matrix(box, size)
            target = confined_path(image_dir, sample.name, sample.source or sample.name, "image name")
            old = previous.get(sample.name)
            up_to_date = (target.is_file() and old is not None and old.size == size and old.original == original
                          and np.allclose(old.matrix, matrix, rtol=0, atol=1e-9))
            if up_to_date:
                report.reused += 1
            else:
                if sample.image is not None:
                    image = sample.image
                else:
                    if cache[0] != str(sample.image_path):
                        cache = (str(sample.image_path), read_image_bgr(sample.image_path))
                    image = cache[1]
                if image is None:
                    report.skipped.setdefault("unreadable or missing image", []).append(str(sample.image_path))
                    continue
                _write_image_atomic(target, cut_crop(image, matrix, size), jpeg_quality)
                report.written += 1
            done[sample.name] = CropRecord(sample.name, original, matrix, size)
            lines.append(format_release_line(sample.name, apply_affine(landmarks, matrix),
                                             sample.visibility if with_visibility else None))
            if subsets is not None:
                missing = [subset for subset in subsets if subset not in sample.attributes]
                if missing:
                    raise ValueError(f"{sample.source}: no {missing} flag(s) for the attribute file")
                flags = [str(int(sample.attributes[subset])) for subset in subsets]
                attr_lines.append(" ".join(flags + [sample.name]))
    except BaseException:
        # Keep the sidecar describing the crops on disk, so an interrupted run resumes where it stopped.
        write_crops(sidecar, {**previous, **done}.values())
        raise
    report.listed = len(lines)
    write_text_atomic(list_path, lines)
    if subsets is not None:
        write_text_atomic(list_path.with_name(list_path.stem + "_attr.txt"), attr_lines)
    write_crops(sidecar, done.values())
    return report


def _relative(path: str | Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _wflw(root: Path, out: Path, run: Callable[..., SplitReport]) -> list[SplitReport]:
    annotations = root / "WFLW_annotations"
    list_dir = annotations / "list_98pt_rect_attr_train_test"
    images = root / "WFLW_images"
    if not images.is_dir():
        raise FileNotFoundError(f"WFLW: image folder not found: {images} (expected the official WFLW_images/)")
    reports = []
    for split in ("train", "test"):
        source = list_dir / f"list_98pt_rect_attr_{split}.txt"
        if not source.is_file():
            print(f"WFLW: {source} not found: skipping the {split} split")
            continue
        samples = read_wflw_official(source, images, check_images=False, allow_nan=True)
        if split == "test":
            _check_subset_lists(annotations, samples)
        originals = [_relative(s.image_path, root) for s in samples]
        reports.append(run(samples, out / split, f"{split}_98pt.txt", originals,
                           subsets=WFLW_ATTRIBUTES if split == "test" else None, split=split))
    return reports


def _check_subset_lists(annotations: Path, samples: list[Sample]) -> None:
    """Cross-check the six flags against the official per-subset lists when they are present."""
    if not (annotations / "list_98pt_test").is_dir():
        return
    try:
        members = read_wflw_subset_lists(annotations, samples)
    except (FileNotFoundError, ValueError) as err:
        print(f"WFLW: subset lists not checked: {err}")
        return
    for attribute, names in members.items():
        flagged = {s.name for s in samples if s.attributes.get(attribute)}
        if flagged != set(names):
            print(f"WFLW: subset {attribute}: the flags mark {len(flagged)} face(s), the subset list "
                  f"{len(names)}; the attribute file follows the flags")


def _300w(root: Path, out: Path, run: Callable[..., SplitReport]) -> list[SplitReport]:
    reports = []
    for split, reader_split, subsets in (("train", "train", None), ("test", "full", ("common", "challenging"))):
        parts = ("train",) if split == "train" else ("common", "challenging")
        folders = [folder for part in parts for folder in W300_SPLITS[part]]
        if not any((root / folder).is_dir() for folder in folders):
            print(f"300W: skipping the {split} split: none of {', '.join(folders)} exists under {root}")
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            samples = read_300w(root, reader_split, allow_nan=True)   # a missing image is an error, not a skip
        for warning in caught:
            print(f"300W: {warning.message}")
        originals = [_relative(s.image_path, root) for s in samples]
        reports.append(run(samples, out / split, f"{split}_68pt.txt", originals, subsets=subsets, split=split))
    return reports


def _cofw(root: Path, out: Path, run: Callable[..., SplitReport]) -> list[SplitReport]:
    reports = []
    for split in ("train", "test"):
        candidates = [root / f"COFW_{split}_color.mat", root / f"COFW_{split}.mat"]
        mat = next((p for p in candidates if p.is_file()), None)
        if mat is None:
            print(f"COFW: neither {candidates[0].name} nor {candidates[1].name} in {root}: skipping the {split} split")
            continue
        samples = read_cofw(mat, split, allow_nan=True)
        originals = [f"{_relative(mat, root)}:{i + 1}" for i in range(len(samples))]
        reports.append(run(samples, out / split, f"{split}_29pt.txt", originals, with_visibility=True, split=split))
    return reports


DATASETS = {"wflw": _wflw, "300w": _300w, "cofw": _cofw}



def prepare_dataset(dataset: str, root: str | Path, out: str | Path, size: int = 256, scale: float = 1.2,
                    jpeg_quality: int = 95, progress: bool = True) -> list[SplitReport]:
    """Prepare every split of the official release ``dataset`` (``wflw``, ``300w`` or ``cofw``) found under
    ``root`` into ``out/{train,test}`` (crops of side ``size``, box ``scale``, ``jpeg_quality`` for .jpg
    crops; docs/data_formats.md). Returns one report per split prepared (empty when none was found); a
    split that is not there is announced on stdout and skipped. Raises FileNotFoundError or ValueError
    for a broken release (the message names the file)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}: expected one of {sorted(DATASETS)}")

    def run(samples, out_dir, list_name, originals, **kwargs) -> SplitReport:
        return prepare_split(samples, out_dir, list_name, originals, size=size, scale=scale,
                             jpeg_quality=jpeg_quality, progress=progress, **kwargs)

    return DATASETS[dataset](Path(root), Path(out), run)
