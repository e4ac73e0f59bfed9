"""Landmark facts as data: landmark schemes (count, flip permutation, normalisation indices, subsets;
the built-in ones are the scheme files in ``builtin/``), their graphs (edge lists in ``graphs/``) and the
index maps from the 98 WFLW landmarks to the 68- and 29-point layouts."""
from .graphs import (adjacency_pattern, landmark_correlation, laplacian_matrix, read_edges, topk_graph,
                     topk_graph_weighted, write_edges)
from .index_maps import INDEX_MAPS, WFLW98_TO_300W68, WFLW98_TO_COFW29
from .schemes import (BUILTIN_DIR, BUILTIN_SCHEMES, Scheme, get_scheme, load_scheme_file, scheme_for_num_landmarks,
                      scheme_from_dict)

__all__ = ["Scheme", "get_scheme", "load_scheme_file", "scheme_for_num_landmarks", "scheme_from_dict",
           "BUILTIN_SCHEMES", "BUILTIN_DIR", "read_edges", "adjacency_pattern", "laplacian_matrix", "topk_graph",
           "topk_graph_weighted", "landmark_correlation", "write_edges", "INDEX_MAPS", "WFLW98_TO_300W68",
           "WFLW98_TO_COFW29"]
