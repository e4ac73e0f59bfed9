"""Dataset facts as data: landmark schemes (count, flip permutation, normalisation indices,
subsets) and their graphs."""
from .graphs import (adjacency_pattern, landmark_correlation, laplacian_matrix, read_edges, topk_graph,
                     topk_graph_weighted, write_edges)
from .schemes import (BUILTIN_SCHEMES, Scheme, get_scheme, load_scheme_file, scheme_for_num_landmarks,
                      scheme_from_dict)

__all__ = ["Scheme", "get_scheme", "load_scheme_file", "scheme_for_num_landmarks", "scheme_from_dict",
           "BUILTIN_SCHEMES", "read_edges", "adjacency_pattern", "laplacian_matrix", "topk_graph",
           "topk_graph_weighted", "landmark_correlation", "write_edges"]
