"""Write a synthetic face set to disk in the release's processed format (``lgrn synth``; the formats are
in docs/data_formats.md, the faces in docs/synthetic.md).

Layout under ``out_dir``: ``Image/synth_000000.png ...``; ``{split}_{K}pt.txt`` with one line per image
of 4K+1 tokens (2K coordinates x0 y0 x1 y1 ... in pixels, 2K weights = the landmark's visibility repeated
for x and y, 1 visible / 0 hidden, then the image path relative to ``out_dir``); ``{split}_{K}pt_attr.txt`` with
the scheme's subset flags (wflw98: pose expression illumination makeup occlusion blur; 300w68: common
challenging) then the same path, in the same order (no attribute file for cofw29, whose scheme has no
subsets). Images are rendered in parallel by ``workers`` processes; the result does not depend on it.
"""
from __future__ import annotations

import multiprocessing as mp
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
from tqdm import tqdm

from ...landmarks import get_scheme
from ..readers.release_list import format_release_line, write_text_atomic
from .faces import SyntheticFaces

# Huffman-only deflate: 30 % faster than level 1 and smaller on these noisy images (~100 kB at 256 px).
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]

_WORKER: dict = {}


@dataclass
class SynthSummary:
    """What ``write_synthetic_dataset`` wrote."""

    num_images: int
    list_path: Path
    attr_path: Path | None
    attribute_counts: dict[str, int] = field(default_factory=dict)
    hidden_fraction: float = 0.0
    seconds: float = 0.0


def _init_worker(faces: SyntheticFaces, image_dir: str) -> None:
    # One OpenCV thread per process: the processes already use the cores.
    cv2.setNumThreads(1)
    _WORKER["faces"] = faces
    _WORKER["image_dir"] = Path(image_dir)


def _write_one(index: int) -> tuple[str, dict[str, int], int]:
    """Render and save one image; returns its list line, its attributes and its hidden-landmark count."""
    faces: SyntheticFaces = _WORKER["faces"]
    sample = faces.sample(index)
    path = _WORKER["image_dir"] / sample.name
    if not cv2.imwrite(str(path), sample.image, PNG_PARAMS):
        raise OSError(f"could not write {path}")
    line = format_release_line(f"Image/{sample.name}", sample.landmarks, sample.visibility, decimals=4)
    return line, sample.attributes, int((~sample.visibility).sum())


def write_synthetic_dataset(out_dir: str | Path, num_images: int, seed: int = 0, size: int = 256,
                            scheme: str = "wflw98", split: str = "train", occlusion_rate: float = 0.3,
                            workers: int = 2, progress: bool = True) -> SynthSummary:
    """Render ``num_images`` faces into ``out_dir`` (layout in the module docstring); lists are written
    atomically after every image is on disk."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if num_images < 1:
        raise ValueError(f"--num must be at least 1, got {num_images}")
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    faces = SyntheticFaces(num_images, seed=seed, size=size, scheme=scheme, occlusion_rate=occlusion_rate)
    out_dir = Path(out_dir)
    image_dir = out_dir / "Image"
    image_dir.mkdir(parents=True, exist_ok=True)
    num_landmarks = len(faces.index_map)
    start = time.perf_counter()
    bar = tqdm(total=num_images, desc="synth", unit="img", disable=not progress, file=sys.stderr)
    results = []
    if workers == 1:
        _init_worker(faces, str(image_dir))
        for i in range(num_images):
            results.append(_write_one(i))
            bar.update()
    else:
        # spawn (not fork): safe with any threads the parent runs, same behaviour on every platform.
        ctx = mp.get_context("spawn")
        chunk = max(1, min(32, num_images // (4 * workers)))
        with ctx.Pool(workers, initializer=_init_worker, initargs=(faces, str(image_dir))) as pool:
            for result in pool.imap(_write_one, range(num_images), chunksize=chunk):
                results.append(result)
                bar.update()
    bar.close()
    list_path = out_dir / f"{split}_{num_landmarks}pt.txt"
    write_text_atomic(list_path, [line for line, _, _ in results])
    columns = get_scheme(scheme).subsets
    attr_path = None
    if columns:
        attr_path = out_dir / f"{split}_{num_landmarks}pt_attr.txt"
        write_text_atomic(attr_path, [" ".join(str(attrs[c]) for c in columns) + " " + line.rsplit(" ", 1)[1]
                                  for line, attrs, _ in results])
    counts = {key: sum(attrs[key] for _, attrs, _ in results) for key in results[0][1]}
    hidden = sum(h for _, _, h in results) / float(num_images * num_landmarks)
    return SynthSummary(num_images=num_images, list_path=list_path, attr_path=attr_path,
                        attribute_counts=counts, hidden_fraction=hidden, seconds=time.perf_counter() - start)

