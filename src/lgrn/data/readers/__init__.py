"""Dataset readers: every annotation format becomes a ``list[Sample]`` (lgrn.data.sample). The release's
processed lists and their attribute / crop sidecars (``release_list``), the official WFLW lists
(``wflw``), 300-W ``.pts`` folders (``w300``), COFW ``.mat`` files (``cofw``) and a generic CSV /
JSON-lines format for user-defined schemes (``generic``). Errors name the file, the 1-based line and the
field.
"""
from .cofw import read_cofw
from .generic import read_generic
from .release_list import (CropRecord, confined_path, crops_path_for, format_release_line, read_attributes, read_crops,
                           read_release_list, read_release_lists, write_crops, write_text_atomic)
from .w300 import read_300w, read_pts
from .wflw import WFLW_ATTRIBUTES, face_name, read_wflw_official, read_wflw_subset_lists

__all__ = ["read_release_list", "read_release_lists", "read_attributes", "read_crops", "write_crops", "CropRecord",
           "crops_path_for", "format_release_line", "write_text_atomic", "read_wflw_official",
           "read_wflw_subset_lists", "WFLW_ATTRIBUTES", "face_name", "read_pts", "read_300w", "read_cofw",
           "read_generic", "confined_path"]
