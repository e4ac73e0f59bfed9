"""Synthetic faces with exact ground truth: the embedded default dataset. Each image is a face-like
drawing whose 98 WFLW landmarks are known exactly (68- and 29-point layouts through index maps), with
per-landmark visibility (False exactly for landmarks painted over by an occluder, hidden behind the nose
or turned away from the camera) and WFLW-style subset flags. Images are deterministic per (seed, index),
whatever the number of worker processes (docs/synthetic.md). Only numpy and OpenCV; geometry in
:mod:`.shape`, drawing in :mod:`.render`, :mod:`.occlude` and :mod:`.draw`; :mod:`.writer` writes a set to
disk in the release's processed list format (``lgrn synth``).
"""
from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass

import cv2
import numpy as np

from ...landmarks.index_maps import INDEX_MAPS
from ..sample import Sample
from .draw import inside
from .occlude import degrade as _degrade
from .occlude import draw_occluders
from .render import Look, draw_background, draw_face, sample_look
from .shape import FaceGeometry, build_geometry, load_shape_model, sample_face_params

POSE_YAW = 30.0   # |yaw| at or above this (degrees) sets the "pose" flag


def landmark_index_map(scheme: str) -> np.ndarray:
    """Indices ``[K]`` into the 98 WFLW landmarks for a built-in scheme (``wflw98``, ``300w68``, ``cofw29``;
    the maps are landmark facts: :data:`lgrn.landmarks.index_maps.INDEX_MAPS`)."""
    if scheme not in INDEX_MAPS:
        raise ValueError(f"synthetic faces support the schemes {sorted(INDEX_MAPS)}, got {scheme!r}")
    return np.asarray(INDEX_MAPS[scheme], dtype=np.int64)


@dataclass
class SyntheticRender:
    """Everything about one rendered face, for tests and debugging. Per-landmark arrays use the 98-point
    layout: ``landmarks [98, 2]``, ``visibility [98]``, ``self_visible [98]`` (not turned away),
    ``occluded [98]`` (painted over by an occluder or hair), ``nose_hidden [98]`` (behind the nose).
    Masks ``[H, W]`` uint8: ``occluder_mask`` (occluders and fringe), ``face_mask`` (skin silhouette),
    ``nose_mask``."""

    image: np.ndarray
    landmarks: np.ndarray
    visibility: np.ndarray
    self_visible: np.ndarray
    occluded: np.ndarray
    nose_hidden: np.ndarray
    occluder_mask: np.ndarray
    face_mask: np.ndarray
    nose_mask: np.ndarray
    geometry: FaceGeometry
    look: Look
    occluders: list[str]
    flags: dict[str, int]


class SyntheticFaces:
    """A seeded, indexable set of synthetic faces.

    ``SyntheticFaces(num_images, seed=0, size=256, scheme="wflw98", occlusion_rate=0.3)``: image ``i`` is
    a BGR uint8 ``[size, size, 3]`` face whose landmark box fills about 1/1.2 of the side; it depends only
    on (seed, i). ``occlusion_rate`` is the probability that a face gets occluders (changing it changes
    nothing else in the image). ``degrade=False`` switches off blur, lighting and noise (for inspection).
    """

    def __init__(self, num_images: int, seed: int = 0, size: int = 256, scheme: str = "wflw98",
                 occlusion_rate: float = 0.3, *, degrade: bool = True) -> None:
        if not isinstance(num_images, (int, np.integer)) or num_images < 0:
            raise ValueError(f"num_images must be a non-negative integer, got {num_images!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if not isinstance(size, (int, np.integer)) or size < 64:
            raise ValueError(f"size must be an integer >= 64 (pixels), got {size!r}")
        if not 0.0 <= float(occlusion_rate) <= 1.0:
            raise ValueError(f"occlusion_rate must lie in [0, 1], got {occlusion_rate!r}")
        self.index_map = landmark_index_map(scheme)
        self.num_images = int(num_images)
        self.seed = int(seed)
        self.size = int(size)
        self.scheme = scheme
        self.occlusion_rate = float(occlusion_rate)
        self.degrade = degrade
        self.model = load_shape_model()

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> Sample:
        return self.sample(index)

    def _check_index(self, index: int) -> int:
        if not isinstance(index, (int, np.integer)) or not 0 <= index < self.num_images:
            raise IndexError(f"synthetic face index {index!r} out of range 0..{self.num_images - 1}")
        return int(index)

    def render(self, index: int) -> SyntheticRender:
        """Render face ``index`` with all its intermediate facts (98-point layout)."""
        index = self._check_index(index)
        # Independent streams per component: occlusion or degradation settings never change the face.
        streams = np.random.SeedSequence([self.seed, index]).spawn(5)
        shape_rng, look_rng, background_rng, occluder_rng, degrade_rng = (np.random.default_rng(s) for s in streams)
        params = sample_face_params(shape_rng, len(self.model.mode_std))
        geo = build_geometry(self.model, params, self.size, shape_rng)
        look = sample_look(look_rng)
        image = np.empty((self.size, self.size, 3), dtype=np.uint8)
        draw_background(image, background_rng)
        face_mask, nose_mask, occluder_mask = draw_face(image, geo, look)
        occluders: list[str] = []
        if occluder_rng.random() < self.occlusion_rate:
            occluders = draw_occluders(image, occluder_mask, geo, occluder_rng)
        flags = _degrade(image, degrade_rng) if self.degrade else {"illumination": 0, "blur": 0}
        landmarks = geo.landmarks
        occluded = inside(occluder_mask, landmarks)
        nose_hidden = inside(nose_mask, landmarks)
        nose_hidden[51:60] = False          # the nose's own points are on it, not behind it
        visibility = geo.self_visible & ~occluded & ~nose_hidden
        return SyntheticRender(image=image, landmarks=landmarks, visibility=visibility,
                               self_visible=geo.self_visible.copy(), occluded=occluded, nose_hidden=nose_hidden,
                               occluder_mask=occluder_mask, face_mask=face_mask, nose_mask=nose_mask, geometry=geo,
                               look=look, occluders=occluders, flags=flags)

    def attributes(self, render: SyntheticRender) -> dict[str, int]:
        """Subset flags: the six WFLW ones (pose = |yaw| >= 30 deg, expression = wide-open mouth, broad
        smile or strongly raised brows, illumination = strong lighting gradient or dark exposure, makeup,
        occlusion = an occluder covers a landmark of this scheme, blur = strong Gaussian or motion blur),
        plus 300W's ``challenging`` (pose, occlusion or expression) / ``common`` for the 300w68 scheme."""
        p = render.geometry.params
        attrs = {
            "pose": int(abs(p.yaw) >= POSE_YAW),
            "expression": int(p.mouth_open > 0.15 or p.smile > 0.8 or p.brow_raise > 0.8),
            "illumination": int(render.flags["illumination"]),
            "makeup": int(render.look.makeup),
            "occlusion": int(render.occluded[self.index_map].any()),
            "blur": int(render.flags["blur"]),
        }
        if self.scheme == "300w68":
            attrs["challenging"] = int(attrs["pose"] or attrs["occlusion"] or attrs["expression"])
            attrs["common"] = 1 - attrs["challenging"]
        return attrs

    def sample(self, index: int) -> Sample:
        """Face ``index`` as a :class:`Sample`: ``image`` BGR uint8, ``landmarks [K, 2]`` float64 in this
        scheme's layout, ``visibility [K]`` bool, ``bbox`` = the 98-point landmark box, subset flags."""
        render = self.render(index)
        landmarks = render.landmarks[self.index_map].astype(np.float64)
        box = np.concatenate([render.landmarks.min(axis=0), render.landmarks.max(axis=0)])
        return Sample(image_path="", name=f"synth_{index:06d}.png", landmarks=landmarks, bbox=box,
                      attributes=self.attributes(render), visibility=render.visibility[self.index_map].copy(),
                      source=f"synthetic(seed={self.seed}, size={self.size}):{index}", image=render.image)


_POOL_FACES: list[SyntheticFaces] = []


def _pool_init(faces: SyntheticFaces) -> None:
    cv2.setNumThreads(1)      # the processes already use the cores
    _POOL_FACES[:] = [faces]


def _pool_sample(index: int) -> Sample:
    return _POOL_FACES[0].sample(index)


def generate_samples(num_images: int, seed: int = 0, size: int = 256, scheme: str = "wflw98",
                     occlusion_rate: float = 0.3, workers: int = 1) -> list[Sample]:
    """All ``num_images`` faces of ``SyntheticFaces(num_images, seed, size, scheme, occlusion_rate)`` in
    memory (about 200 kB per 256-px image), rendered by ``workers`` processes (same result for any count)."""
    faces = SyntheticFaces(num_images, seed=seed, size=size, scheme=scheme, occlusion_rate=occlusion_rate)
    if workers <= 1 or num_images < 2:
        return [faces.sample(i) for i in range(len(faces))]
    # spawn (not fork): safe whatever threads the parent (e.g. torch) runs.
    with mp.get_context("spawn").Pool(workers, initializer=_pool_init, initargs=(faces,)) as pool:
        return pool.map(_pool_sample, range(num_images), chunksize=max(1, min(32, num_images // (4 * workers))))

