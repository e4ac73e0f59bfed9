"""Decoded-image cache (``train_param.cache: true``): every sample's image decoded once into one flat
uint8 memory-mapped file, so epochs never re-decode JPEG/PNG (issue 6 item 2).

Layout in the cache directory: ``<name>_<fingerprint>.u8`` (the BGR uint8 pixels of all images, one
after another) and ``<name>_<fingerprint>.json`` (fingerprint, shape and byte offset per image). The
fingerprint hashes each sample's image path, size and modification time (or, for in-memory images,
the pixels), so a changed list or a touched image rebuilds the cache and an unchanged one is reused.
Both files are written to temporary names and renamed, so concurrent builders (several ranks) never
see half a cache. The memmap is opened lazily in each process (DataLoader workers included).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from tqdm import tqdm

from ..atomic import atomic_write, write_text_atomic
from ..images import decode_bgr8
from .sample import Sample

logger = logging.getLogger(__name__)
CACHE_VERSION = 1


def to_bgr_uint8(image: np.ndarray, where: str) -> np.ndarray:
    """Normalise a decoded or in-memory image to BGR uint8 ``[H, W, 3]``: grayscale -> BGR, BGRA ->
    BGR, 16-bit -> 8-bit (value / 257). ``where`` names the sample in errors."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{where}: image must be a numpy array, got {type(image).__name__}")
    if image.dtype == np.uint16:
        image = np.rint(image / 257.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"{where}: image must be uint8 or uint16, got {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"{where}: expected an image [H, W], [H, W, 3] or [H, W, 4], got shape {image.shape}")


def load_image(sample: Sample) -> np.ndarray:
    """The sample's BGR uint8 ``[H, W, 3]`` image: ``sample.image`` when set, else the file decoded with
    ``cv2.imdecode(IMREAD_COLOR)`` (any depth/channel count -> 8-bit BGR). A missing or undecodable
    file raises an error naming the path and the sample's source line."""
    where = sample.source or sample.name
    if sample.image is not None:
        return to_bgr_uint8(sample.image, where)
    path = Path(sample.image_path)
    try:
        data = np.fromfile(path, dtype=np.uint8)       # also handles non-ASCII paths, unlike cv2.imread
    except OSError as exc:
        raise FileNotFoundError(f"{where}: cannot read image {path}: {exc.strerror or exc}") from None
    image = decode_bgr8(data)                          # cv2.imdecode(IMREAD_COLOR), orientation applied
    if image is None:
        raise ValueError(f"{where}: cannot decode image {path} (not an image file or corrupt)")
    return image


def fingerprint(samples: list[Sample]) -> str:
    """Hex digest identifying the images of ``samples`` (paths + size + mtime, or in-memory pixels)."""
    h = hashlib.blake2b(digest_size=10)
    h.update(f"lgrn-cache-v{CACHE_VERSION}:{len(samples)}".encode())
    for sample in samples:
        if sample.image is not None:
            image = np.ascontiguousarray(sample.image)
            h.update(f"|mem:{sample.name}:{image.shape}:{image.dtype}:".encode())
            h.update(image.tobytes())
        else:
            path = Path(sample.image_path)
            try:
                st = path.stat()
            except OSError:
                raise FileNotFoundError(f"{sample.source or sample.name}: image not found: {path}") from None
            h.update(f"|file:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


class ImageCache:
    """Read access to a built cache: ``cache[i]`` -> BGR uint8 ``[H, W, 3]`` (read-only view) of the
    i-th sample of the list it was built from. Picklable (the memmap is reopened per process)."""

    def __init__(self, data_path: str | Path, shapes: list[tuple[int, int, int]], offsets: list[int],
                 key: str) -> None:
        self.data_path = Path(data_path)
        self.shapes = [tuple(int(v) for v in s) for s in shapes]
        self.offsets = [int(o) for o in offsets]
        self.key = key
        self._data: np.memmap | None = None

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, index: int) -> np.ndarray:
        if self._data is None:
            self._data = np.memmap(self.data_path, dtype=np.uint8, mode="r")
        shape = self.shapes[index]
        start = self.offsets[index]
        return self._data[start:start + int(np.prod(shape))].reshape(shape)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_data"] = None
        return state


def _paths(cache_dir: Path, name: str, key: str) -> tuple[Path, Path]:
    return cache_dir / f"{name}_{key}.u8", cache_dir / f"{name}_{key}.json"


def open_cache(samples: list[Sample], cache_dir: str | Path, name: str = "train",
               key: str | None = None) -> ImageCache | None:
    """The cache for exactly these samples if one was built, else None (``key``: their fingerprint,
    when the caller has it already)."""
    key = fingerprint(samples) if key is None else key
    data_path, index_path = _paths(Path(cache_dir), name, key)
    if not (data_path.is_file() and index_path.is_file()):
        return None
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        return None
    if index.get("fingerprint") != key or len(index.get("shapes", ())) != len(samples):
        return None
    expected = sum(int(np.prod(s)) for s in index["shapes"])
    if data_path.stat().st_size != expected:
        return None
    return ImageCache(data_path, index["shapes"], index["offsets"], key)


def build_image_cache(samples: list[Sample], cache_dir: str | Path, name: str = "train",
                      progress: bool = True, threads: int | None = None) -> ImageCache:
    """Open the cache for ``samples`` in ``cache_dir`` or build it (decode every image once, with a
    progress bar, on a few threads: ``cv2.imdecode`` releases the GIL)."""
    cache_dir = Path(cache_dir)
    key = fingerprint(samples)
    found = open_cache(samples, cache_dir, name, key)
    if found is not None:
        logger.info("image cache: reusing %s (%d images)", found.data_path, len(found))
        return found
    cache_dir.mkdir(parents=True, exist_ok=True)
    data_path, index_path = _paths(cache_dir, name, key)
    shapes: list[tuple[int, ...]] = []
    offsets: list[int] = []
    threads = threads or min(4, os.cpu_count() or 1)

    def write_images(f: BinaryIO) -> None:
        offset = 0
        with ThreadPoolExecutor(threads) as pool:
            images = pool.map(load_image, samples)
            for image in tqdm(images, total=len(samples), desc=f"caching {name} images", disable=not progress,
                              unit="img"):
                image = np.ascontiguousarray(image)
                f.write(image.tobytes())
                shapes.append(tuple(image.shape))
                offsets.append(offset)
                offset += image.nbytes

    # The data first, then the index that names it: a kill in between leaves an index whose fingerprint
    # or sizes do not match, which open_cache rejects, so the cache is rebuilt.
    atomic_write(data_path, write_images)
    write_text_atomic(index_path, json.dumps({"version": CACHE_VERSION, "fingerprint": key, "shapes": shapes,
                                              "offsets": offsets, "names": [s.name for s in samples]}))
    offset = sum(int(np.prod(shape)) for shape in shapes)
    logger.info("image cache: built %s (%d images, %.1f MB)", data_path, len(samples), offset / 2**20)
    return ImageCache(data_path, shapes, offsets, key)
