"""Synthetic faces with exact ground truth (docs/synthetic.md): the embedded default dataset.

Modules: :mod:`.faces` (:class:`SyntheticFaces`, the seeded indexable set, and :func:`generate_samples`),
:mod:`.shape` (98-point geometry from the packaged WFLW shape model ``wflw98_shape_model.json``),
:mod:`.render` (background, head and features), :mod:`.occlude` (occluders and camera degradations),
:mod:`.draw` (sub-pixel drawing primitives) and :mod:`.writer` (:func:`write_synthetic_dataset`, the
library side of ``lgrn synth``). The 98 -> 68 / 29 index maps are landmark facts
(:mod:`lgrn.landmarks.index_maps`), re-exported here.
"""
from ...landmarks.index_maps import INDEX_MAPS, WFLW98_TO_300W68, WFLW98_TO_COFW29
from .faces import POSE_YAW, SyntheticFaces, SyntheticRender, generate_samples, landmark_index_map
from .writer import SynthSummary, write_synthetic_dataset

__all__ = ["SyntheticFaces", "SyntheticRender", "generate_samples", "landmark_index_map", "POSE_YAW",
           "INDEX_MAPS", "WFLW98_TO_300W68", "WFLW98_TO_COFW29", "SynthSummary", "write_synthetic_dataset"]
